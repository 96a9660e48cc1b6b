//! MQTT: the embedded broker (rumqttd) and its in-process link, the phones'
//! TLS front door (the gateway, which reads every packet), the topics every
//! message travels on, and the socket option both listeners use.

pub(crate) mod broker;
pub(crate) mod gateway;
pub(crate) mod quickack;
pub(crate) mod topics;

//! MQTT: the embedded broker (rumqttd) and its in-process link, the phones'
//! TLS front door (the gateway, which reads every packet), the topics every
//! message travels on, and the socket option both listeners use.

pub mod broker;
pub mod gateway;
pub mod quickack;
pub mod topics;

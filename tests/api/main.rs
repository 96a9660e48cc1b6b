//! Integration tests: each test starts the real `topdog` binary on loopback
//! ports with a fresh data directory (see `helpers`) and talks HTTPS to it.

mod acme;
mod certificates;
mod cli;
mod commands;
mod config;
mod console;
mod crash;
mod devices;
mod escalation;
mod fakes;
mod fuzz;
mod hardening;
mod helpers;
mod hooks;
mod idp;
mod input;
mod license;
mod logs;
mod messaging;
mod mqtt;
mod nodes;
mod offline;
mod oidc;
mod openapi;
mod pairing;
mod pebble;
mod people;
mod phone;
mod pipeline;
mod postgres;
mod proxies;
mod push;
#[path = "../support/push_service.rs"]
mod push_service;
mod qr;
mod receipts;
mod review;
mod scoped_tokens;
mod security;
mod service;
mod sms;
mod tls_scan;
mod tokens;
mod ui;
mod upgrade;

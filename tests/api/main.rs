//! Integration tests: the real `pinkpage` binary over real HTTP and
//! WebSockets, against real OpenSSH `sshd` processes on loopback.

mod access;
mod access_changes;
mod audit_actions;
mod bench;
mod bmx4;
mod bmx5;
mod caps;
mod cli;
mod client_limits;
mod console;
mod demo;
mod diff;
mod dotenv;
mod health;
mod host_keys;
mod identity;
mod layers;
mod lock;
mod openapi_contract;
mod protocol_doc;
mod rest;
mod restart;
mod server_dies;
mod servers;
mod shell_mode;
mod shutdown;
mod sign_in_limits;
mod silent_network;
mod ssh_layer;
mod startup;
mod store_faults;
mod stub;
mod support;
mod transfers;
mod workflows;

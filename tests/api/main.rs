mod ssh_layer;
mod support;

//! `fermyon:spin/variables@2.0.0`: the component's rendered variables.

use super::InstanceState;
use super::bindings::fermyon::spin::variables::{self as v, Error};

impl v::Host for InstanceState {
    async fn get(&mut self, name: String) -> wasmtime::Result<Result<String, Error>> {
        if spinmesh_config::variables::check_name(&name).is_err() {
            return Ok(Err(Error::InvalidName(name)));
        }
        Ok(self
            .component
            .variables
            .get(&name)
            .cloned()
            .ok_or(Error::Undefined(name)))
    }
}

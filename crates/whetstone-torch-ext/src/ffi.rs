//! The C ABI of `csrc/ext.cpp`. Every call returns NULL or a malloc'd message to free with
//! `wt_free`; [`check`] turns that into a `Result`.

use crate::error::{ExtError, Result};
use std::ffi::{c_char, c_int, CStr};
use torch_sys::C_tensor;

extern "C" {
    pub fn wt_free(msg: *mut c_char);
    pub fn wt_autocast_get(device: c_int, enabled: *mut c_int, dtype: *mut c_int) -> *mut c_char;
    pub fn wt_autocast_set(device: c_int, enabled: c_int, dtype: c_int) -> *mut c_char;
    pub fn wt_autocast_enter(depth: *mut c_int) -> *mut c_char;
    pub fn wt_autocast_exit(depth: *mut c_int) -> *mut c_char;
    pub fn wt_fused_adam(
        decoupled: c_int,
        params: *const *mut C_tensor,
        grads: *const *mut C_tensor,
        exp_avgs: *const *mut C_tensor,
        exp_avg_sqs: *const *mut C_tensor,
        max_exp_avg_sqs: *const *mut C_tensor,
        n_max: i64,
        state_steps: *const *mut C_tensor,
        n: i64,
        lr: f64,
        beta1: f64,
        beta2: f64,
        weight_decay: f64,
        eps: f64,
        amsgrad: c_int,
        maximize: c_int,
        grad_scale: *mut C_tensor,
        found_inf: *mut C_tensor,
    ) -> *mut c_char;
    pub fn wt_fused_sgd(
        params: *const *mut C_tensor,
        grads: *const *mut C_tensor,
        momentum_buffers: *const *mut C_tensor,
        n_buf: i64,
        n: i64,
        weight_decay: f64,
        momentum: f64,
        lr: f64,
        dampening: f64,
        nesterov: c_int,
        maximize: c_int,
        is_first_step: c_int,
        grad_scale: *mut C_tensor,
        found_inf: *mut C_tensor,
    ) -> *mut c_char;
}

/// The error of a call that returned `msg` (NULL: success). Frees the message.
pub fn check(call: &'static str, msg: *mut c_char) -> Result<()> {
    if msg.is_null() {
        return Ok(());
    }
    // SAFETY: a non-null return is a NUL-terminated string malloc'd by ext.cpp, freed once here.
    let message = unsafe { CStr::from_ptr(msg) }.to_string_lossy().into_owned();
    // SAFETY: as above; not used after this.
    unsafe { wt_free(msg) };
    Err(ExtError::Torch { call, message })
}

/// tch handles of `ts`, for a call that only reads the pointers while `ts` lives.
pub fn handles(ts: &[tch::Tensor]) -> Vec<*mut C_tensor> {
    ts.iter().map(|t| t.as_ptr() as *mut C_tensor).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpp_exceptions_come_back_as_errors() {
        // An unknown device type code throws inside the shim; the exception must arrive as an
        // error naming the call, and the state must be unchanged.
        // SAFETY: plain values.
        let e = check("autocast_set", unsafe { wt_autocast_set(7, 1, 15) }).unwrap_err();
        assert!(e.to_string().contains("unknown device type code 7"), "{e}");
        // SAFETY: plain values.
        let e = check("autocast_set", unsafe { wt_autocast_set(0, 1, 3) }).unwrap_err();
        assert!(e.to_string().contains("Half, Float or BFloat16"), "{e}");
        let (mut on, mut dt) = (9, 0);
        // SAFETY: valid out-pointers.
        check("autocast_get", unsafe { wt_autocast_get(0, &mut on, &mut dt) }).unwrap();
        assert_eq!(on, 0);
    }
}

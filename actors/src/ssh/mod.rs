//! SSH over russh (to be built).

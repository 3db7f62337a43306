//! SCS-API v1alpha1 types.

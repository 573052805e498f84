//! whetstone-models

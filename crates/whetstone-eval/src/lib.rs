//! whetstone-eval

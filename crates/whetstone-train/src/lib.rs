//! whetstone-train

//! whetstone-data

//! whetstone-optim

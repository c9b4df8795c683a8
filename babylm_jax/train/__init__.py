"""What is optimised and how: loss, optimizer, sharding, the step, the loop, checkpoints."""

"""Click groups, one per task: they parse options, call the task's library functions and
format what those return. No ML logic here, and no TensorFlow import at module level."""

"""Networks, training loops, CAM computation, inference, devices and precision."""

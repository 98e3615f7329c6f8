"""Controller layer (rclpy + runtime): the realtime ROS 2 node and its pure helpers (safety, rate keeping)."""

"""Data layer (rosbags, numpy): rosbag2 recordings -> time-aligned episodes at the control rate."""

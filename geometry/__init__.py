"""Pose maths shared by every package: poses ``[x, y, yaw]`` (world units, radians)."""

from geometry.pose import (BLOCKED_BELOW, compose, nearest_pose, pose_change, pose_distance, relative_pose, stalled,
                           wrap_angle, wrap_yaw)

__all__ = ["BLOCKED_BELOW", "compose", "nearest_pose", "pose_change", "pose_distance", "relative_pose", "stalled",
           "wrap_angle", "wrap_yaw"]

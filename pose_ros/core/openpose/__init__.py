"""OpenPose bottom-up multi-person pose: channel layout and Part Affinity Field grouping (pure library)."""

"""Object SDF backbones (role ``sdf``) and mesh extraction."""

//! uvs control plane

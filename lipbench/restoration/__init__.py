"""The restoration science: the forward model (blur, noise, observations), PnP-PGD, group actions
and equivariant denoisers, and image-quality metrics."""

"""moeplan: plans Mixture-of-Experts deployments on GPU and NPU clusters."""

__version__ = "0.1.0"

"""The one device-specific layer: the written contract (base), CPU, CUDA, an isolated run's parent, NVML, the
test-only CUDA stand-in, and the choice among them (select)."""

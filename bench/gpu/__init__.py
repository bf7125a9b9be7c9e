"""GPU-only concerns kept out of the device-agnostic loop: NVML by UUID, the isolated child with its timeout,
several GPUs in parallel, the NVIDIA-without-CUDA check, and the CUDA stand-in the tests run on CPU."""

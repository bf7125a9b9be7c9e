"""`--kernel-db aiconfigurator[:backend[@version]]` and which of the database's systems a hardware preset is."""
from dataclasses import dataclass

from theory.errors import TheoryError

DATABASES = ("aiconfigurator",)
BACKENDS = ("vllm", "trtllm", "sglang")
DEFAULT_BACKEND = "vllm"
# The pinned release whose files and collector were read (pyproject's `kernel-db` extra).
PACKAGE = "aiconfigurator-core"
PACKAGE_VERSION = "0.12.0"
INSTALL_HINT = f"pip install -e '.[kernel-db]' (or: pip install {PACKAGE}=={PACKAGE_VERSION})"

# theory's hardware preset -> the database's system folder (aiconfigurator_core/systems/data/<system>/).
# Only presets whose exact part the database measured: a PCIe or 40 GB part is not its SXM 80 GB sibling.
SYSTEMS: dict[str, str] = {
    "a100-sxm-80gb": "a100_sxm",
    "h100-sxm-80gb": "h100_sxm",
    "h200": "h200_sxm",
    "b200": "b200_sxm",
    "l40s": "l40s",
}


@dataclass(frozen=True)
class KernelDbSpec:
    database: str = "aiconfigurator"
    backend: str = DEFAULT_BACKEND
    version: str | None = None        # None: the newest version the system has for that backend

    def label(self) -> str:
        return f"{self.database}:{self.backend}" + (f"@{self.version}" if self.version else "")


def parse_spec(text: str) -> KernelDbSpec:
    name, _, rest = text.partition(":")
    if name not in DATABASES:
        raise TheoryError(f"--kernel-db must start with one of {', '.join(DATABASES)}, got {text!r}")
    backend, _, version = rest.partition("@")
    backend = backend or DEFAULT_BACKEND
    if backend not in BACKENDS:
        raise TheoryError(f"--kernel-db backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if "@" in rest and not version:
        raise TheoryError(f"--kernel-db {text!r}: a version after '@' is empty")
    return KernelDbSpec(name, backend, version or None)


def system_for(hardware: str) -> str:
    if hardware not in SYSTEMS:
        raise TheoryError(f"hardware {hardware!r} has no system in the kernel database; presets that do: "
                          + ", ".join(f"{k} ({v})" for k, v in SYSTEMS.items()))
    return SYSTEMS[hardware]

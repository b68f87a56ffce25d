"""What the suite times, defined once: a ``Workload`` is a name, a family, its sizes, and a
``setup`` that builds the contenders' zero-argument callables, pass by pass.

    Workload(name="conv2d N=32", family="kernel", description="N=32 Cin=32 ...",
             setup=lambda options: {"scratchgen[cpu]": {"forward": f, "forward+backward": fb},
                                    "torch": {...}, "scratchgen[reference]": Skip("why")},
             work={"forward": Work(3.0e8, "flop"), ...}, series="conv2d vs batch", x=32)

Contender names say what runs:
    scratchgen[IMPL]   the user's path: Tensors through scratchgen's autograd (``F.conv2d`` ...),
                       every kernel call under ``use_kernels(IMPL)``
    kernel[IMPL]       the kernel functions called directly on arrays (no autograd): kernel-only rows
    torch, numpy       the peers (PyTorch CPU through its autograd; NumPy where it is the floor)
A contender set to ``Skip(reason)`` is reported with its reason instead of timed; one whose setup
raised becomes ``Broken(error)``, reported as an error, and the other contenders still run.
"""
import dataclasses
import importlib
import typing

from .timing import describe, measure

PASSES = ("forward", "forward+backward")
IMPLEMENTATIONS = ("reference", "cpu", "gpu")
PEERS = ("torch", "numpy", "sklearn")
# How to install a missing peer: the version the twins are tested with, as a CPU wheel (an unpinned
# torch from an extra could pull a multi-gigabyte CUDA build).
PEER_INSTALL = {"torch": "pip install torch==2.13.0"}


@dataclasses.dataclass(frozen=True)
class Work:
    """What one call does, to turn a time into a rate: ``amount`` of ``unit`` ("flop", "byte", "token",
    "example" or "op"); ``note`` says what is counted when that is a choice (e.g. "GEMM FLOPs")."""
    amount: float
    unit: str
    note: str = ""


@dataclasses.dataclass(frozen=True)
class Skip:
    """A contender left out, and why (a missing peer, a size too big for the reference, no GPU)."""
    reason: str


@dataclasses.dataclass(frozen=True)
class Broken:
    """A contender whose setup raised: reported with its error, while the others still run."""
    error: str


@dataclasses.dataclass(frozen=True)
class Workload:
    name: str                                  # unique within its family; --only matches "family/name"
    family: str                                # ceiling | kernel | engine | model | sampling
    description: str                           # the sizes, in words
    setup: typing.Callable                     # setup(options) -> {contender: {pass: callable} | Skip}
    work: dict = dataclasses.field(default_factory=dict)  # pass -> Work of one call
    series: str | None = None                  # the scaling series it is a point of ("attention vs T")
    x: float | None = None                     # its place on that series' axis
    design: bool = False                       # one of DESIGN.md's reference workloads
    memory: bool = False                       # also record tracemalloc peaks of the scratchgen contenders

    @property
    def key(self):
        return f"{self.family}/{self.name}"


@dataclasses.dataclass(frozen=True)
class Options:
    """What to run and how hard to time it."""
    quick: bool = False                        # tiny sizes, one timed round: a smoke run
    impls: tuple = ("reference", "cpu")        # scratchgen kernel implementations to time
    peers: tuple = PEERS                       # peers to time when installed
    reference_max_length: int = 2048           # attention: skip the O(T^2)-memory reference above this T
    repeats: int = 20                          # timed rounds at most ...
    min_repeats: int = 3                       # ... and at least, whatever the budget
    warmup: int = 2                            # untimed calls first (the first is reported: JIT compilation)
    budget_s: float = 5.0                      # seconds of timed rounds to aim for, per workload and pass
    memory: bool = True                        # tracemalloc peaks (measured at the first thread count only)
    torch_compile: str = ""                    # models (a regular expression) also run through torch.compile,
                                               # at the first thread count only; never in a quick run

    @classmethod
    def for_quick_run(cls, **changes):
        return cls(quick=True, repeats=1, min_repeats=1, warmup=1, budget_s=0.0, **changes)


@dataclasses.dataclass(frozen=True)
class Precompiled:
    """A pass whose first call (a compilation: ``torch.compile``'s takes minutes) already ran in
    setup, timed there. The suite reports ``first_call_s`` and ``note`` from here and times ``call``
    like any other pass: the compilation neither counts as a round nor, being far over the budget,
    cuts the rounds of the workload's other contenders (see ``time_interleaved``)."""
    call: typing.Callable
    first_call_s: float
    note: str = ""


def compile_ahead(step, calls=2):
    """``Precompiled(step)`` after ``calls`` untimed calls: the first is where a JIT compiles (its
    time is kept), the others where it may compile again (e.g. once an optimizer's state exists)."""
    first_call_s = measure(step)
    for _ in range(calls - 1):
        step()
    return Precompiled(step, first_call_s)


def as_passes(pair, names=PASSES):
    """The family scripts' ``(forward, forward_backward)`` pairs as ``{pass: callable}``."""
    return dict(zip(names, pair))


def unavailable(impl):
    """Why ``impl`` cannot run here, or None."""
    if impl == "gpu":
        from scratchgen import cuda
        if not cuda.is_available():
            return "gpu: no CUDA device visible to CuPy on this machine"
    return None


class Placement:
    """Where one implementation's arrays live and how its calls run: NumPy arrays for
    ``reference`` and ``cpu``, CuPy arrays for ``gpu`` (each call then waits for the device, so
    the clock sees the work and not just the launch); every call under ``use_kernels(impl)``."""

    def __init__(self, impl):
        self.impl = impl

    def array(self, array):
        """``array`` where this implementation computes: as it is, or copied to the GPU."""
        if self.impl != "gpu":
            return array
        import cupy
        return cupy.asarray(array)

    def kernels(self, family):
        return importlib.import_module(f"scratchgen.kernels.{family}.{self.impl}")

    def wrap(self, fn):
        from scratchgen import use_kernels

        def call():
            with use_kernels(self.impl):
                fn()
            if self.impl == "gpu":
                import cupy
                cupy.cuda.Device().synchronize()
        return call


def implementation_contenders(options, prefix, build):
    """``{f"{prefix}[{impl}]": {pass: callable}}`` for every implementation asked for, where
    ``build(placement)`` gives that implementation's ``{pass: callable}`` (or a ``Skip``)."""
    contenders = {}
    for impl in options.impls:
        reason = unavailable(impl)
        if reason:
            contenders[f"{prefix}[{impl}]"] = Skip(reason)
            continue
        place = Placement(impl)
        passes = guarded(lambda: build(place))
        contenders[f"{prefix}[{impl}]"] = passes if isinstance(passes, (Skip, Broken)) else \
            {name: place.wrap(fn) for name, fn in passes.items()}
    return contenders


def peer_contender(options, name, build):
    """``{name: build()}`` when the peer was asked for; ``Skip`` when it is not installed."""
    if name not in options.peers:
        return {}
    try:
        return {name: guarded(build)}
    except ImportError as error:
        return {name: Skip(f"{name} is not installed ({error}); {PEER_INSTALL.get(name, 'install it')}")}


def guarded(build):
    """``build()``, or ``Broken`` with the error it raised (an ImportError goes through: a missing
    peer is a skip, not a failure)."""
    try:
        return build()
    except ImportError:
        raise
    except Exception as error:  # noqa: BLE001 -- reported in the results, never swallowed
        return Broken(describe(error))


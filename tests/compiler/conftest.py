import pytest


@pytest.fixture(autouse=True, scope="session")
def _generated_kernels_in_a_temporary_folder(tmp_path_factory):
    """Fused kernels go to a folder of this test session, not the user's cache."""
    patch = pytest.MonkeyPatch()
    patch.setenv("SCRATCHGEN_CACHE", str(tmp_path_factory.mktemp("scratchgen-cache")))
    yield
    patch.undo()

"""Layout graphs against networkx / explicit neighbour loops; Laplacian eigenvectors; files."""

import itertools

import pytest
import torch

from qgfd_diffusion.graphs import (
    check_graph,
    laplacian_eigenvectors,
    layout_graph,
    load_graph_file,
    normalized_laplacian,
    save_graph_file,
)
from qgfd_diffusion.latents import LatentLayout

nx = pytest.importorskip("networkx")


def _dense(graph):
    return graph.to_dense().bool()


def _expected(coords, neighbours):
    """Adjacency from an explicit pairwise rule over token coordinates (token order)."""
    L = len(coords)
    A = torch.zeros(L, L, dtype=torch.bool)
    for a, b in itertools.permutations(range(L), 2):
        A[a, b] = neighbours(coords[a], coords[b])
    return A


def test_grid4_is_networkx_grid_graph():
    A = layout_graph(LatentLayout("grid", (3, 4)), "grid4", 12)
    ref = nx.to_numpy_array(
        nx.grid_2d_graph(3, 4), nodelist=list(itertools.product(range(3), range(4)))
    )
    assert torch.equal(_dense(A), torch.as_tensor(ref).bool())


def test_grid8_adds_diagonals():
    coords = list(itertools.product(range(3), range(4)))
    king = lambda a, b: max(abs(a[0] - b[0]), abs(a[1] - b[1])) == 1  # noqa: E731
    A = layout_graph(LatentLayout("grid", (3, 4)), "grid8", 12)
    assert torch.equal(_dense(A), _expected(coords, king))


def test_video_is_frames_times_grid():
    coords = list(itertools.product(range(2), range(2), range(3)))  # (frame, row, column)
    step = lambda a, b: sum(abs(x - y) for x, y in zip(a, b, strict=True)) == 1  # noqa: E731
    A = layout_graph(LatentLayout("video", (2, 2, 3)), "video", 12)
    assert torch.equal(_dense(A), _expected(coords, step))


def test_chain_on_any_layout_and_none():
    A = layout_graph(LatentLayout("sequence", (10,)), "chain", 7)  # 7 tokens of a max-10 sequence
    ref = nx.to_numpy_array(nx.path_graph(7))
    assert torch.equal(_dense(A), torch.as_tensor(ref).bool())
    assert layout_graph(LatentLayout("grid", (2, 2)), "none", 4) is None


def test_layout_graph_errors_name_the_layout():
    with pytest.raises(ValueError, match="needs a 'grid' layout"):
        layout_graph(LatentLayout("sequence", (4,)), "grid4", 4)
    with pytest.raises(ValueError, match="layout_graph must be one of"):
        layout_graph(LatentLayout("sequence", (4,)), "ring", 4)


def test_check_graph_rejects_bad_shapes_and_weights():
    with pytest.raises(ValueError, match=r"\[L, L\] or \[B, L, L\]"):
        check_graph(torch.ones(2, 3, 4), 2, 3)
    with pytest.raises(ValueError, match="B = 2"):
        check_graph(torch.ones(3, 4, 4), 2, 4)
    with pytest.raises(ValueError, match="negative"):
        check_graph(-torch.ones(4, 4).to_sparse(), 2, 4)


def test_laplacian_eigenvectors_solve_the_eigenproblem():
    A = torch.as_tensor(nx.to_numpy_array(nx.cycle_graph(8)))[None]
    U = laplacian_eigenvectors(A, 3).double()  # [1, 8, 3]
    laplacian = normalized_laplacian(A)
    rayleigh = torch.einsum("bli,blm,bmi->bi", U, laplacian, U)  # eigenvalues of the vectors
    torch.testing.assert_close(laplacian @ U, U * rayleigh[:, None, :], atol=1e-6, rtol=0)
    ref = torch.linalg.eigvalsh(laplacian)[0, 1:4]  # independent: sorted spectrum
    torch.testing.assert_close(rayleigh[0], ref, atol=1e-6, rtol=0)
    assert laplacian_eigenvectors(A[:, :3, :3], 5).shape == (1, 3, 5)  # padded with zeros


@pytest.mark.parametrize("suffix", [".npy", ".safetensors"])
def test_graph_files_round_trip(tmp_path, suffix):
    A = torch.rand(2, 5, 5)
    if suffix == ".npy":
        import numpy as np

        np.save(tmp_path / "g.npy", A.numpy())
        path = tmp_path / "g.npy"
    else:
        path = save_graph_file(A.to_sparse(), tmp_path)
    assert torch.equal(load_graph_file(path), A)
    with pytest.raises(FileNotFoundError):
        load_graph_file(tmp_path / "missing.npy")

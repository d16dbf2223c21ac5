"""Static layout and the linear solve of the network Newton step.

Private module of :mod:`kernels.network`.

The Newton step needs solves with the Schur complement
S = B_f J^{-1} B_f^T on the free nodes, where B_f is the node-edge incidence
restricted to free nodes and J = diag(d) + (tee couplings) the Jacobian of
the edge losses. Without tees S is a weighted graph Laplacian (edge weights
1/d_e), symmetric positive definite when every free node reaches a fixed
node. Two static reductions make the dense factorisation small:

1. Series chains. A free node of degree two (no tee nearby) sits inside a
   chain of edges in series (hose, quick disconnect, cold plate, ...).
   Gaussian elimination of such nodes is exact and cheap: a chain acts on
   its end nodes as one conductance 1/sum(d), and its interior values follow
   by back substitution along the chain. Chains are padded to a common
   length and handled as (n_chains, K) arrays.
2. Blocks. The remaining (condensed) free nodes split into connected
   components once the fixed-pressure nodes are removed (e.g. ladders hanging
   between a common supply and return); each component is factorised on its
   own (batched dense Cholesky, or LU when tees make S non-symmetric).

All index sets are numpy arrays computed once per topology.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from ..solvers import dense as _dense

__all__ = ["Layout"]


def _blocks(n, a, b):
    """Connected blocks of n nodes joined by pairs (a, b): block id and local
    index per node, number of blocks, block size. Falls back to one block when
    padding to the largest block would cost more than one dense matrix."""
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), 0, 0
    g = sp.coo_matrix((np.ones(a.size), (a, b)), shape=(n, n))
    ncomp, lab = connected_components(g, directed=False)
    sizes = np.bincount(lab, minlength=ncomp)
    m = int(sizes.max())
    if ncomp * m**3 >= n**3:
        return np.zeros(n, np.int64), np.arange(n), 1, n
    order = np.argsort(lab, kind="stable")
    loc = np.empty(n, np.int64)
    start = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    loc[order] = np.arange(n) - np.repeat(start, sizes)
    return lab.astype(np.int64), loc, int(ncomp), m


def _chains(n, src, dst, internal):
    """Walk the series chains through ``internal`` nodes. Returns a list of
    (edges, interior nodes, start node, end node) and the updated internal
    mask (nodes on closed loops of internal nodes are made non-internal)."""
    adj = [[] for _ in range(n)]
    for e, (a, b) in enumerate(zip(src, dst, strict=True)):
        adj[a].append(e)
        adj[b].append(e)

    def other(e, node):
        return int(dst[e]) if src[e] == node else int(src[e])

    used = np.zeros(src.size, bool)
    chains = []
    for u in np.flatnonzero(~internal):
        for e in adj[u]:
            if used[e] or not internal[other(e, u)]:
                continue
            edges, nodes = [e], []
            used[e] = True
            cur = other(e, u)
            while internal[cur]:
                nodes.append(cur)
                e2 = adj[cur][1] if adj[cur][0] == edges[-1] else adj[cur][0]
                edges.append(e2)
                used[e2] = True
                cur = other(e2, cur)
            chains.append((edges, nodes, int(u), cur))
    internal = internal.copy()
    covered = np.zeros(n, bool)
    for _, nodes, _, _ in chains:
        covered[nodes] = True
    internal &= covered  # internal-only cycles stay in the dense part
    return chains, internal


@dataclass(frozen=True)
class Layout:
    """Index arrays derived once from a network topology (numpy, static)."""

    n_nodes: int
    n_edges: int
    src: np.ndarray
    dst: np.ndarray
    ref: np.ndarray  # partner leg of tee edges (run <-> branch), the edge itself otherwise
    is_tee: np.ndarray
    has_tees: bool
    free: np.ndarray  # free node ids, (n_free,)
    fixed: np.ndarray
    # series chains, padded to K interior nodes / K + 1 edges
    n_chains: int
    ch_edges: np.ndarray  # (n_chains, K + 1) edge ids (0 in padding)
    ch_emask: np.ndarray  # (n_chains, K + 1)
    ch_int: np.ndarray  # (n_chains, K) free index of interior nodes (n_free in padding)
    ch_imask: np.ndarray
    ch_u: np.ndarray  # (n_chains,) node ids of the chain ends
    ch_v: np.ndarray
    # condensed free nodes and their dense blocks
    c_free: np.ndarray  # free index of every condensed node, (n_c,)
    c_node: np.ndarray  # node id of every condensed node
    n_blocks: int
    block_size: int
    c_blk: np.ndarray
    c_loc: np.ndarray
    reg_edges: np.ndarray  # edges not inside a chain
    tees: np.ndarray
    s_blk: np.ndarray  # scatter indices of the condensed Schur entries
    s_row: np.ndarray
    s_col: np.ndarray
    pad_eye: np.ndarray  # (n_blocks, m, m) identity on padded entries

    @property
    def n_free(self) -> int:
        return int(self.free.size)

    @staticmethod
    def build(n_nodes, edge_from, edge_to, edge_kind, fixed_nodes, tee_partner, tee_kinds, condense=True):
        n, ne = n_nodes, len(edge_from)
        src = np.asarray(edge_from, np.int64)
        dst = np.asarray(edge_to, np.int64)
        kind = np.asarray(edge_kind, np.int64)
        is_tee = np.isin(kind, list(tee_kinds))
        ref = np.arange(ne, dtype=np.int64)
        if tee_partner:
            tr = np.asarray(tee_partner, np.int64)
            ref = np.where(is_tee & (tr >= 0), tr, ref)
        fixed_mask = np.zeros(n, bool)
        fixed_mask[list(fixed_nodes)] = True
        free = np.flatnonzero(~fixed_mask)
        fixed = np.flatnonzero(fixed_mask)
        nf = free.size
        fpos = np.full(n, -1, np.int64)
        fpos[free] = np.arange(nf)

        # -- series chains
        deg = np.bincount(src, minlength=n) + np.bincount(dst, minlength=n)
        keep = fixed_mask.copy()
        tees = np.flatnonzero(is_tee)
        for e in np.concatenate([tees, ref[tees]]):
            keep[src[e]] = keep[dst[e]] = True
        internal = (deg == 2) & ~keep if condense else np.zeros(n, bool)
        chains, internal = _chains(n, src, dst, internal)
        nch = len(chains)
        k = max((len(c[1]) for c in chains), default=0)
        ch_edges = np.zeros((nch, k + 1), np.int64)
        ch_emask = np.zeros((nch, k + 1), bool)
        ch_int = np.full((nch, k), nf, np.int64)
        ch_imask = np.zeros((nch, k), bool)
        ch_u = np.zeros(nch, np.int64)
        ch_v = np.zeros(nch, np.int64)
        in_chain = np.zeros(ne, bool)
        for i, (edges, nodes, u, v) in enumerate(chains):
            ch_edges[i, : len(edges)] = edges
            ch_emask[i, : len(edges)] = True
            ch_int[i, : len(nodes)] = fpos[nodes]
            ch_imask[i, : len(nodes)] = True
            ch_u[i], ch_v[i] = u, v
            in_chain[edges] = True
        reg = np.flatnonzero(~in_chain)

        # -- condensed nodes and blocks
        cmask = ~fixed_mask & ~internal
        c_node = np.flatnonzero(cmask)
        nc = c_node.size
        cpos = np.full(n, -1, np.int64)
        cpos[c_node] = np.arange(nc)
        pa = np.concatenate([src[reg], ch_u])
        pb = np.concatenate([dst[reg], ch_v])
        ok = (cpos[pa] >= 0) & (cpos[pb] >= 0)
        blk, loc, nb, m = _blocks(nc, cpos[pa[ok]], cpos[pb[ok]])

        # -- Schur entries: regular edges, tee couplings, chain conductances
        def pattern(a1, b1, a2, b2):
            rows = np.concatenate([a1, b1, a1, b1])
            cols = np.concatenate([a2, b2, b2, a2])
            return rows, cols

        r1, c1 = pattern(src[reg], dst[reg], src[reg], dst[reg])
        r2, c2 = pattern(src[tees], dst[tees], src[ref[tees]], dst[ref[tees]])
        r3, c3 = pattern(ch_u, ch_v, ch_u, ch_v)
        rows = cpos[np.concatenate([r1, r2, r3])]
        cols = cpos[np.concatenate([c1, c2, c3])]
        ok = (rows >= 0) & (cols >= 0)
        safe_r, safe_c = np.maximum(rows, 0), np.maximum(cols, 0)
        s_blk = np.where(ok, blk[safe_r] if nc else 0, nb)
        s_row = np.where(ok, loc[safe_r] if nc else 0, 0)
        s_col = np.where(ok, loc[safe_c] if nc else 0, 0)
        if ok.any() and not np.all(blk[rows[ok]] == blk[cols[ok]]):
            raise ValueError("tee coupling between different free-node blocks")
        pad = np.zeros((nb, m, m))
        used = np.zeros((nb, m), bool)
        used[blk, loc] = True
        bi, li = np.nonzero(~used)
        pad[bi, li, li] = 1.0
        i32 = np.int32
        return Layout(
            n_nodes=n,
            n_edges=ne,
            src=src.astype(i32),
            dst=dst.astype(i32),
            ref=ref.astype(i32),
            is_tee=is_tee,
            has_tees=bool(is_tee.any()),
            free=free.astype(i32),
            fixed=fixed.astype(i32),
            n_chains=nch,
            ch_edges=ch_edges.astype(i32),
            ch_emask=ch_emask,
            ch_int=ch_int.astype(i32),
            ch_imask=ch_imask,
            ch_u=ch_u.astype(i32),
            ch_v=ch_v.astype(i32),
            c_free=fpos[c_node].astype(i32),
            c_node=c_node.astype(i32),
            n_blocks=nb,
            block_size=m,
            c_blk=blk.astype(i32),
            c_loc=loc.astype(i32),
            reg_edges=reg.astype(i32),
            tees=tees.astype(i32),
            s_blk=s_blk.astype(i32),
            s_row=s_row.astype(i32),
            s_col=s_col.astype(i32),
            pad_eye=pad,
        )

    # ------------------------------------------------------------ the solve
    def schur_solve(self, d, c, rhs, transpose=False):
        """Solve S x = rhs (or S^T x = rhs) on the free nodes.

        Args:
            d: Jacobian diagonal per edge, shape (n_edges,), nonzero.
            c: tee couplings dh_t/dQ_p(t) to the partner leg p(t) (0 elsewhere);
                each tee pair forms a 2 x 2 block of J_h.
            rhs: shape (n_free,).

        Returns:
            x, shape (n_free,).
        """
        dt = rhs.dtype
        nf = self.n_free
        if self.n_chains:
            rho = jnp.where(jnp.asarray(self.ch_emask), d[self.ch_edges], 0.0)  # (nch, K+1)
            f = jnp.where(
                jnp.asarray(self.ch_imask),
                rhs.at[self.ch_int].get(mode="fill", fill_value=0.0),
                0.0,
            )
            res = jnp.sum(rho, axis=1)
            zero = jnp.zeros((self.n_chains, 1), dt)
            cum = jnp.concatenate([zero, jnp.cumsum(f, axis=1)], axis=1)  # flow offsets per edge
            sigma = jnp.sum(rho * cum, axis=1)
            total = cum[:, -1]
            add = jnp.zeros((self.n_nodes,), dt)
            add = add.at[self.ch_u].add(sigma / res).at[self.ch_v].add(total - sigma / res)
            rhs_c = rhs[self.c_free] + add[self.c_node]
        else:
            rhs_c = rhs[self.c_free]
        x_c = self._block_solve(self._schur_blocks(d, c, dt), rhs_c, transpose)
        if not self.n_chains:
            return jnp.zeros((nf,), dt).at[self.c_free].set(x_c)
        x_nodes = jnp.zeros((self.n_nodes,), dt).at[self.c_node].set(x_c)
        xu, xv = x_nodes[self.ch_u], x_nodes[self.ch_v]
        f1 = (xu - xv - sigma) / res
        drop = rho * (f1[:, None] + cum)  # pressure drop along every chain edge
        x_int = xu[:, None] - jnp.cumsum(drop, axis=1)[:, :-1]
        x = jnp.zeros((nf,), dt).at[self.c_free].set(x_c)
        return x.at[self.ch_int].set(x_int, mode="drop")

    def _schur_blocks(self, d, c, dt):
        if self.has_tees:
            # J_h^{-1} of a tee pair (t, p): [[d_p, -c_t], [-c_p, d_t]] / det
            p = self.ref
            det = d * d[p] - c * c[p]
            winv = jnp.where(jnp.asarray(self.is_tee), d[p] / det, 1.0 / d)
            w = winv[self.reg_edges]
        else:
            w = 1.0 / d[self.reg_edges]
        vals = [w, w, -w, -w]
        if self.has_tees:
            t = self.tees
            wt = -c[t] / det[t]
            vals += [wt, wt, -wt, -wt]
        if self.n_chains:
            rho = jnp.where(jnp.asarray(self.ch_emask), d[self.ch_edges], 0.0)
            wc = 1.0 / jnp.sum(rho, axis=1)
            vals += [wc, wc, -wc, -wc]
        vals = jnp.concatenate(vals)
        s = jnp.zeros((self.n_blocks, self.block_size, self.block_size), dt)
        s = s.at[self.s_blk, self.s_row, self.s_col].add(vals, mode="drop")
        return s + jnp.asarray(self.pad_eye, dt)

    def _block_solve(self, s, v, transpose):
        if v.shape[0] == 0:
            return v
        z = jnp.zeros((self.n_blocks, self.block_size), v.dtype)
        rb = z.at[self.c_blk, self.c_loc].set(v)[..., None]
        if not self.has_tees:
            x = _dense.cho_solve(_dense.cho_factor(s), rb)
        else:
            x = _dense.solve(jnp.swapaxes(s, -1, -2) if transpose else s, rb)
        return x[..., 0][self.c_blk, self.c_loc]

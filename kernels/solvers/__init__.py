"""The solver shelf: 7-point operators with multigrid (linsolve), Krylov loops
(krylov) and bracketed scalar roots (roots)."""

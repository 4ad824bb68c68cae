# cython: language_level=3
"""Cas22 ramp fitting with integrated jump detection (ALGORITHMS.md §1).

Optimal-weighted least-squares slopes of unevenly sampled ramps (Casertano et al. 2022,
weights after Fixsen et al. 2000) with the single/double-difference jump statistic of
Sharma et al. (2023).  One pixel at a time, rows in parallel with OpenMP.

Jump detection has two stages.  Stage 1 is the Cas22 statistic (ALGORITHMS.md §1.4): each
single or double resultant difference is compared with the slope m of the whole segment.
At low signal that slope still contains the jump and absorbs a large part of it, so a
segment whose Cas22 maximum stays at or below the threshold T(m) but above a screening level
goes to stage 2, the common-slope refit (``_refit_stat``): for every candidate i (single: a
step between resultants i and i+1; double: a step inside resultant i+1) the resultants on
either side of the candidate are fitted as two sub-segments (§1.2) and their slopes combined
with inverse read-variance weights (§1.3) into one slope m_c that the step cannot bias.
The step is estimated as a linear combination J = sum_k a_k R_k (the minimum-variance blend
of R_after - R_before - m_c (tbar_after - tbar_before) and the difference of the two
sub-segment intercepts at a common time), its variance follows exactly from the
coefficients, sigma^2 sum_k a_k^2 / N_k + max(m_c, 0) sum_k [a_k^2 tau_k + 2 a_k
sum_{j<k} a_j tbar_j], and Z = J / sqrt(var).  If max Z > T(m) the two resultants of the
best candidate are flagged and the segment is split exactly as in stage 1.
Segments that stage 1 flags are handled
exactly as in the reference.

Everything a pixel needs lives in per-thread scratch buffers allocated once per thread;
the per-pixel code is plain C (no numpy, no Python objects).  All arithmetic is double
precision; results are stored as float32.

Units inside the kernel are electrons: resultants and read noise are multiplied by the
gain on the fly and the results are divided by it again, so the outputs are DN/s.
"""
import numpy as np
cimport numpy as cnp
from cython.parallel cimport prange, threadid
from libc.math cimport NAN, fabs, fmax, isfinite, log10, pow, sqrt

ctypedef cnp.uint8_t u8
ctypedef cnp.uint32_t u32
ctypedef cnp.int32_t i32
ctypedef cnp.int64_t i64

cnp.import_array()

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    static int romancore_max_threads(void) { return omp_get_max_threads(); }
    #else
    static int romancore_max_threads(void) { return 1; }
    #endif
    """
    int romancore_max_threads() nogil

# group (uint8) and pixel (uint32) DQ bits used here; values of the Roman products
cdef u8 G_DO_NOT_USE = 1
cdef u8 G_SATURATED = 2
cdef u8 G_JUMP_DET = 4
cdef u32 P_DO_NOT_USE = 1
cdef u32 P_SATURATED = 2
cdef u32 P_JUMP_DET = 4
cdef u32 P_NO_GAIN_VALUE = 1 << 19


def max_threads():
    """Number of threads an OpenMP region uses by default (1 without OpenMP)."""
    return romancore_max_threads()


cdef struct Pattern:
    # read-pattern quantities (length nres) and fixed jump quantities (length nres-1)
    Py_ssize_t nres
    const double* tbar
    const double* tau
    const double* nread
    const double* dt1
    const double* rn1
    const double* vs1
    const double* dt2
    const double* rn2
    const double* vs2


cdef struct SegFit:
    double slope       # e/s
    double rvar_unit   # read-noise variance of the slope per unit read variance (sigma^2 = 1)
    double pvar_unit   # Poisson variance of the slope per unit flux


cdef inline double _power(double snr) noexcept nogil:
    # Fixsen (2000) / Casertano (2022) table; a NaN snr falls through to 10 as in the reference
    if snr < 5.0:
        return 0.0
    if snr < 10.0:
        return 0.4
    if snr < 20.0:
        return 1.0
    if snr < 50.0:
        return 3.0
    if snr < 100.0:
        return 6.0
    return 10.0


cdef inline double _abs_pow(double x, double P) noexcept nogil:
    # x**P for the table's powers without calling pow() for the integer ones (0**0 = 1)
    cdef double x2, x3
    if P == 0.0:
        return 1.0
    if P == 1.0:
        return x
    x2 = x * x
    x3 = x2 * x
    if P == 3.0:
        return x3
    if P == 6.0:
        return x3 * x3
    if P == 10.0:
        return x3 * x3 * x3 * x
    return pow(x, P)


cdef inline double _weights(const Pattern* p, const double* R, Py_ssize_t s, Py_ssize_t e,
                            double sig2, double* W, double* F0, double* F1) noexcept nogil:
    """Optimal weights W[s..e] of resultants s..e (ALGORITHMS.md §1.2 steps 1-5); stores
    F0 = sum W and F1 = sum W tbar and returns D = F2 F0 - F1^2."""
    cdef Py_ssize_t i
    cdef double smax, snr, P, tmid, tscale, F2
    smax = R[e] - R[s]
    if smax < 0.0:
        smax = 0.0
    snr = smax / sqrt(sig2 + smax)
    P = _power(snr)
    tmid = 0.5 * (p.tbar[s] + p.tbar[e])
    tscale = 0.5 * (p.tbar[e] - p.tbar[s])
    if tscale == 0.0:
        tscale = 1.0
    F0[0] = 0.0
    F1[0] = 0.0
    F2 = 0.0
    for i in range(s, e + 1):
        W[i] = ((1.0 + P) * p.nread[i] / (1.0 + P * p.nread[i])) * _abs_pow(fabs((p.tbar[i] - tmid) / tscale), P)
        F0[0] = F0[0] + W[i]
        F1[0] = F1[0] + W[i] * p.tbar[i]
        F2 = F2 + W[i] * p.tbar[i] * p.tbar[i]
    return F2 * F0[0] - F1[0] * F1[0]


cdef inline SegFit _fit_segment(const Pattern* p, const double* R, Py_ssize_t s, Py_ssize_t e,
                                double sig2, double* W) noexcept nogil:
    """Optimal-weighted fit of resultants s..e (ALGORITHMS.md §1.2)."""
    cdef SegFit f
    cdef Py_ssize_t i
    cdef double F0, F1, D, K, run
    if e - s + 1 <= 1:
        f.slope = NAN
        f.rvar_unit = NAN
        f.pvar_unit = NAN
        return f
    D = _weights(p, R, s, e, sig2, W, &F0, &F1)
    f.slope = 0.0
    f.rvar_unit = 0.0
    f.pvar_unit = 0.0
    if D == 0.0:
        return f
    run = 0.0
    for i in range(s, e + 1):
        K = (F0 * p.tbar[i] - F1) * W[i] / D
        f.slope = f.slope + K * R[i]
        f.rvar_unit = f.rvar_unit + K * K / p.nread[i]
        f.pvar_unit = f.pvar_unit + K * K * p.tau[i] + 2.0 * K * run
        run = run + K * p.tbar[i]
    return f


cdef inline SegFit _fit_coeffs(const Pattern* p, const double* R, Py_ssize_t s, Py_ssize_t e,
                               double sig2, double* W, double* K) noexcept nogil:
    """As _fit_segment, also storing the weights W[s..e] and the slope coefficients K[s..e]
    (slope = sum K_i R_i).  Only slope and rvar_unit are filled in (pvar_unit is left 0)."""
    cdef SegFit f
    cdef Py_ssize_t i
    cdef double F0, F1, D
    f.slope = 0.0
    f.rvar_unit = 0.0
    f.pvar_unit = 0.0
    D = _weights(p, R, s, e, sig2, W, &F0, &F1)
    for i in range(s, e + 1):
        K[i] = 0.0 if D == 0.0 else (F0 * p.tbar[i] - F1) * W[i] / D
        f.slope = f.slope + K[i] * R[i]
        f.rvar_unit = f.rvar_unit + K[i] * K[i] / p.nread[i]
    return f


cdef inline SegFit _side_fit(const Pattern* p, const double* R, Py_ssize_t s, Py_ssize_t e,
                             double sig2, double* W, double* K, double tdefault, double* w,
                             double* sw, double* tmean) noexcept nogil:
    """One side s..e of a refit candidate: its fit (_fit_coeffs, W and K filled), the inverse
    read variance w (0 when the side has fewer than two resultants), the weight sum sw and
    the W-weighted mean time tmean (tdefault when the weights are missing or sum to 0)."""
    cdef SegFit f
    cdef Py_ssize_t k
    cdef double swt = 0.0
    f.slope = 0.0
    f.rvar_unit = 0.0
    f.pvar_unit = 0.0
    w[0] = 0.0
    sw[0] = 0.0
    tmean[0] = tdefault
    if e - s + 1 >= 2:
        f = _fit_coeffs(p, R, s, e, sig2, W, K)
        if f.rvar_unit > 0.0:
            w[0] = 1.0 / f.rvar_unit
        for k in range(s, e + 1):
            sw[0] = sw[0] + W[k]
            swt = swt + W[k] * p.tbar[k]
        if sw[0] > 0.0:
            tmean[0] = swt / sw[0]
    return f


cdef inline double _refit_stat(const Pattern* p, const double* R, Py_ssize_t s, Py_ssize_t e,
                               double sig2, double* W, double* Kb, double* Ka, double* A,
                               double* B, Py_ssize_t* arg) noexcept nogil:
    """Stage 2 of the jump test: maximum common-slope refit statistic of segment s..e.

    Candidate i (s <= i < e) is a single step between resultants i and i+1 (sub-segments
    before = [s, i], after = [a0, e] with a0 = i+1) or, for i < e-1, a double step inside
    resultant i+1 (a0 = i+2; resultant i+1 is left out).  A candidate needs one sub-segment
    of at least two resultants.  Both sub-segments are fitted (§1.2, each with its own
    weights W) and their slopes combined with inverse read-variance weights (§1.3) into the
    common slope m_c, which the step cannot bias.  Two unbiased estimates of the step are
    linear combinations of the resultants:
      adjacent:  J_a = R[a0] - R[i] - m_c (tbar[a0] - tbar[i]);
      intercept: J_b = (Rw_A - m_c tw_A) - (Rw_B - m_c tw_B), with Rw, tw the W-weighted
                 means of the resultants and times of the after (A) / before (B) sub-segment.
    J_a is the better one when Poisson noise dominates (independent increments), J_b when
    read noise does (it averages every resultant).  Their minimum-variance blend
    J = l J_a + (1 - l) J_b, l = (V_b - C_ab) / (V_a + V_b - 2 C_ab), is tested with its
    exact variance: for coefficient vectors a, b,
      Cov = sigma^2 sum a_k b_k / N_k + f sum_k [a_k b_k tau_k + a_k sum_{j<k} b_j tbar_j
                                                 + b_k sum_{j<k} a_j tbar_j],  f = max(m_c, 0).
    Returns the largest Z = J / sqrt(var J) (NaN if no candidate is testable) and its i - s
    in arg.
    """
    cdef Py_ssize_t i, k, a0, kind
    cdef SegFit fb, fa
    cdef double wb, wa, wsum, mc, dt, J, run_a, run_b, z, best = NAN, flux, vk
    cdef double swb, swa, tB, tA, dtw, va, vb, cab, lam, den, var
    arg[0] = 0
    for i in range(s, e):
        fb = _side_fit(p, R, s, i, sig2, W, Kb, p.tbar[i], &wb, &swb, &tB)
        for kind in range(2):
            a0 = i + 1 + kind
            if a0 > e:
                break
            fa = _side_fit(p, R, a0, e, sig2, W, Ka, p.tbar[a0], &wa, &swa, &tA)
            wsum = wb + wa
            if wsum == 0.0:
                continue
            mc = ((wb * fb.slope if wb > 0.0 else 0.0) + (wa * fa.slope if wa > 0.0 else 0.0)) / wsum
            dt = p.tbar[a0] - p.tbar[i]
            dtw = tA - tB
            # coefficients over s..e (zero on a left-out resultant): A of J_a, B of J_b
            for k in range(s, e + 1):
                A[k] = 0.0
                B[k] = 0.0
            if wb > 0.0:
                for k in range(s, i + 1):
                    A[k] = -dt * (wb / wsum) * Kb[k]
                    B[k] = -dtw * (wb / wsum) * Kb[k]
            if wa > 0.0:
                for k in range(a0, e + 1):
                    A[k] = -dt * (wa / wsum) * Ka[k]
                    B[k] = -dtw * (wa / wsum) * Ka[k]
            A[i] = A[i] - 1.0
            A[a0] = A[a0] + 1.0
            if swb > 0.0:
                for k in range(s, i + 1):
                    B[k] = B[k] - W[k] / swb
            else:
                B[i] = B[i] - 1.0
            if swa > 0.0:
                for k in range(a0, e + 1):
                    B[k] = B[k] + W[k] / swa
            else:
                B[a0] = B[a0] + 1.0
            flux = mc if mc > 0.0 else 0.0
            va = 0.0
            vb = 0.0
            cab = 0.0
            run_a = 0.0
            run_b = 0.0
            for k in range(s, e + 1):
                vk = sig2 / p.nread[k] + flux * p.tau[k]
                va = va + A[k] * A[k] * vk + 2.0 * flux * A[k] * run_a
                vb = vb + B[k] * B[k] * vk + 2.0 * flux * B[k] * run_b
                cab = cab + A[k] * B[k] * vk + flux * (A[k] * run_b + B[k] * run_a)
                run_a = run_a + A[k] * p.tbar[k]
                run_b = run_b + B[k] * p.tbar[k]
            den = va + vb - 2.0 * cab
            lam = (vb - cab) / den if den > 1e-12 * (va + vb) else 1.0
            var = lam * lam * va + (1.0 - lam) * (1.0 - lam) * vb + 2.0 * lam * (1.0 - lam) * cab
            if not (var > 0.0):
                continue
            J = 0.0
            for k in range(s, e + 1):
                J = J + (lam * A[k] + (1.0 - lam) * B[k]) * R[k]
            z = J / sqrt(var)
            if z > best or best != best:
                best = z
                arg[0] = i - s
    return best


cdef inline double _zstat(double delta, double m, double vr, double vs, double dt, double c) noexcept nogil:
    return (delta - m) / sqrt((vr + m * vs) / (dt * dt) + c)


cdef inline void _fit_pixel(const Pattern* p, double* R, u8* dq, double* work, Py_ssize_t* stack,
                            double sig2, bint use_jump, double t_icpt, double t_const,
                            bint refit, double screen, double* out) noexcept nogil:
    """Fit one pixel in electrons.  R, dq (length nres) hold its resultants and group flags.

    dq is updated with JUMP_DET.  out receives slope (e/s), read variance, Poisson variance.
    refit enables the stage-2 common-slope test for segments whose Cas22 statistic lies in
    (screen, threshold].  work needs 9*nres doubles, stack 2*(nres+2) entries.
    """
    cdef Py_ssize_t nres = p.nres, i, s, e, top = 0, arg, j0, j1, arg2
    cdef double* W = work
    cdef double* d1 = work + nres
    cdef double* d2 = work + 2 * nres
    cdef double* v1 = work + 3 * nres
    cdef double* v2 = work + 4 * nres
    cdef double* Kb = work + 5 * nres
    cdef double* Ka = work + 6 * nres
    cdef double* A = work + 7 * nres
    cdef double* B = work + 8 * nres
    cdef bint jumped
    cdef SegFit f
    cdef double m, c, best, z, w, sw = 0.0, sws = 0.0, swwr = 0.0, swwp = 0.0, thr, clipped, den

    if use_jump:
        for i in range(nres - 1):
            d1[i] = (R[i + 1] - R[i]) / p.dt1[i]
            v1[i] = sig2 * p.rn1[i]
            if i + 2 < nres:
                d2[i] = (R[i + 2] - R[i]) / p.dt2[i]
                v2[i] = sig2 * p.rn2[i]
            else:
                d2[i] = NAN
                v2[i] = NAN

    # initial segments: maximal runs of resultants with dq == 0, pushed in time order
    i = 0
    while i < nres:
        if dq[i] != 0:
            i = i + 1
            continue
        s = i
        while i + 1 < nres and dq[i + 1] == 0:
            i = i + 1
        stack[2 * top] = s
        stack[2 * top + 1] = i
        top = top + 1
        i = i + 1

    while top > 0:
        top = top - 1
        s = stack[2 * top]
        e = stack[2 * top + 1]
        f = _fit_segment(p, R, s, e, sig2, W)
        if f.slope != f.slope:  # one-point segment: nothing to fit, no jump test
            continue
        if use_jump:
            m = f.slope
            c = -m / (p.tbar[e] - p.tbar[s])
            best = _zstat(d1[e - 1], m, v1[e - 1], p.vs1[e - 1], p.dt1[e - 1], c)
            arg = e - 1 - s
            for i in range(s, e - 1):
                z = fmax(_zstat(d1[i], m, v1[i], p.vs1[i], p.dt1[i], c),
                         _zstat(d2[i], m, v2[i], p.vs2[i], p.dt2[i], c))
                if z > best:
                    best = z
                    arg = i - s
            clipped = m
            if clipped < 1.0:
                clipped = 1.0
            elif clipped > 1.0e4:
                clipped = 1.0e4
            thr = t_icpt - t_const * log10(clipped)
            jumped = best > thr
            if not jumped and refit and best > screen and e - s + 1 >= 3:
                # stage 2: common-slope refit of every candidate (module docstring)
                z = _refit_stat(p, R, s, e, sig2, W, Kb, Ka, A, B, &arg2)
                if z > thr:
                    jumped = True
                    arg = arg2
            if jumped:
                j0 = s + arg
                j1 = j0 + 1
                dq[j0] = dq[j0] | G_JUMP_DET
                dq[j1] = dq[j1] | G_JUMP_DET
                if j0 > s:
                    stack[2 * top] = s
                    stack[2 * top + 1] = j0 - 1
                    top = top + 1
                if j1 < e:
                    stack[2 * top] = j1 + 1
                    stack[2 * top + 1] = e
                    top = top + 1
                continue
        # combine with inverse read-variance weights; using the unit-sigma read variance
        # gives the same weights up to a common factor and stays defined for sigma = 0
        w = 0.0 if f.rvar_unit == 0.0 else 1.0 / f.rvar_unit
        sw = sw + w
        sws = sws + w * f.slope
        swwr = swwr + w * w * f.rvar_unit
        swwp = swwp + w * w * f.pvar_unit
    den = sw if sw != 0.0 else 1.0
    out[0] = sws / den
    out[1] = sig2 * swwr / (den * den)
    out[2] = swwp / (den * den) * (out[0] if out[0] > 0.0 else 0.0)


def fit_cas22(const float[:, :, :] resultants,
              const u8[:, :, :] groupdq,
              const u32[:, :] pixeldq,
              const float[:, :] read_noise,
              const float[:, :] gain,
              const double[::1] tbar,
              const double[::1] tau,
              const double[::1] nread,
              bint use_jump=True,
              double threshold_intercept=5.5,
              double threshold_constant=1.0 / 3.0,
              bint jump_refit=True,
              double refit_screen=3.0,
              int nthreads=0,
              groupdq_out=None,
              dumo_weights=None):
    """Fit every pixel of a ramp cube.

    Parameters
    ----------
    resultants : float32[nres, ny, nx], DN, any strides
    groupdq : uint8[nres, ny, nx], any strides (read only)
    pixeldq : uint32[ny, nx], any strides (zero strides allowed)
    read_noise, gain : float32[ny, nx], DN per read and e/DN, any strides
    tbar, tau, nread : float64[nres], read-pattern quantities (s, s, reads)
    use_jump, threshold_intercept, threshold_constant : jump detection switches
    jump_refit : run the stage-2 common-slope refit on segments whose Cas22 statistic lies
        in (refit_screen, threshold]
    nthreads : OpenMP threads, 0 for the OpenMP default
    groupdq_out : writable uint8[nres, ny, nx] (any strides) to receive the output group DQ,
        may be ``groupdq`` itself (in-place update); None allocates a C-ordered array
    dumo_weights : float64[nres] or None; if given, dumo = sum_i w_i R_i - slope (DN/s) is
        computed for every pixel (w: weights of a uniformly weighted slope)

    Returns
    -------
    slope, var_poisson, var_rnoise, err : float32[ny, nx] (DN/s and (DN/s)^2)
    dq : uint32[ny, nx], groupdq_out : uint8[nres, ny, nx],
    jumps_per_row : int64[ny] (resultants newly flagged JUMP_DET per row),
    dumo : float32[ny, nx] or None
    """
    cdef Py_ssize_t nres = resultants.shape[0], ny = resultants.shape[1], nx = resultants.shape[2]
    cdef Py_ssize_t i, y, x
    if nres < 1:
        raise ValueError("need at least one resultant")
    if (groupdq.shape[0] != nres or groupdq.shape[1] != ny or groupdq.shape[2] != nx
            or pixeldq.shape[0] != ny or pixeldq.shape[1] != nx
            or read_noise.shape[0] != ny or read_noise.shape[1] != nx
            or gain.shape[0] != ny or gain.shape[1] != nx
            or tbar.shape[0] != nres or tau.shape[0] != nres or nread.shape[0] != nres):
        raise ValueError("inconsistent array shapes")
    if nthreads <= 0:
        nthreads = romancore_max_threads()

    nfix = max(nres - 1, 1)
    fixed = np.full((6, nfix), np.nan)
    cdef double[:, ::1] fx = fixed
    for i in range(nres - 1):
        fx[0, i] = tbar[i + 1] - tbar[i]
        fx[1, i] = 1.0 / nread[i + 1] + 1.0 / nread[i]
        fx[2, i] = tau[i + 1] + tau[i] - 2.0 * tbar[i]
        if i + 2 < nres:
            fx[3, i] = tbar[i + 2] - tbar[i]
            fx[4, i] = 1.0 / nread[i + 2] + 1.0 / nread[i]
            fx[5, i] = tau[i + 2] + tau[i] - 2.0 * tbar[i]
    cdef Pattern pat
    pat.nres = nres
    pat.tbar = &tbar[0]
    pat.tau = &tau[0]
    pat.nread = &nread[0]
    pat.dt1 = &fx[0, 0]
    pat.rn1 = &fx[1, 0]
    pat.vs1 = &fx[2, 0]
    pat.dt2 = &fx[3, 0]
    pat.rn2 = &fx[4, 0]
    pat.vs2 = &fx[5, 0]

    slope_a = np.empty((ny, nx), dtype=np.float32)
    vp_a = np.empty((ny, nx), dtype=np.float32)
    vr_a = np.empty((ny, nx), dtype=np.float32)
    err_a = np.empty((ny, nx), dtype=np.float32)
    dq_a = np.empty((ny, nx), dtype=np.uint32)
    if groupdq_out is None:
        gdq_a = np.empty((nres, ny, nx), dtype=np.uint8)
    else:
        gdq_a = groupdq_out
        if gdq_a.shape != (nres, ny, nx):
            raise ValueError("groupdq_out has the wrong shape")
    nj_a = np.zeros(ny, dtype=np.int64)
    cdef bint want_dumo = dumo_weights is not None
    cdef double[::1] dw
    if want_dumo:
        dw = np.ascontiguousarray(dumo_weights, dtype=np.float64)
        if dw.shape[0] != nres:
            raise ValueError("dumo_weights must have one weight per resultant")
        dumo_a = np.empty((ny, nx), dtype=np.float32)
    else:
        dw = np.zeros(max(nres, 1))
        dumo_a = np.empty((1, 1), dtype=np.float32)
    cdef float[:, ::1] o_dumo = dumo_a
    cdef float[:, ::1] o_slope = slope_a
    cdef float[:, ::1] o_vp = vp_a
    cdef float[:, ::1] o_vr = vr_a
    cdef float[:, ::1] o_err = err_a
    cdef u32[:, ::1] o_dq = dq_a
    cdef u8[:, :, :] o_gdq = gdq_a
    cdef i64[::1] o_nj = nj_a

    # per-thread scratch: resultants (nres), work (9 nres), results (3); flags; segment stack.
    # Each thread's row is padded to whole 64-byte cache lines plus two spare lines, so no
    # cache line is written by two threads (false sharing made 2 threads cost ~30-50 % more
    # CPU than 1 on some runs).
    scratch_a = np.empty((nthreads, (10 * nres + 3 + 7) // 8 * 8 + 16), dtype=np.float64)
    flags_a = np.empty((nthreads, (2 * nres + 63) // 64 * 64 + 128), dtype=np.uint8)
    stack_a = np.empty((nthreads, (2 * nres + 4 + 7) // 8 * 8 + 16), dtype=np.intp)
    cdef double[:, ::1] scratch = scratch_a
    cdef u8[:, ::1] flags = flags_a
    cdef Py_ssize_t[:, ::1] stacks = stack_a

    cdef double* R
    cdef double* work
    cdef double* res3
    cdef u8* dq
    cdef u8* orig
    cdef Py_ssize_t* stack
    cdef int tid
    cdef double g, rn, sig2, vp, vr, slope, err, acc
    cdef u32 pdq
    cdef bint anyjump, allsat, allbad
    cdef i64 nj
    cdef u8 q

    for y in prange(ny, nogil=True, schedule="dynamic", chunksize=4, num_threads=nthreads):
        tid = threadid()
        R = &scratch[tid, 0]
        work = R + nres
        res3 = R + 10 * nres
        dq = &flags[tid, 0]
        orig = dq + nres
        stack = &stacks[tid, 0]
        nj = 0
        for x in range(nx):
            g = gain[y, x]
            rn = read_noise[y, x]
            for i in range(nres):
                dq[i] = groupdq[i, y, x]
                orig[i] = dq[i]
            pdq = pixeldq[y, x]
            acc = 0.0
            if want_dumo:
                for i in range(nres):
                    acc = acc + dw[i] * resultants[i, y, x]
            if not (g > 0.0 and isfinite(g) and rn >= 0.0 and isfinite(rn)):
                slope = NAN
                vp = NAN
                vr = NAN
                err = NAN
                if not (g > 0.0 and isfinite(g)):
                    pdq = pdq | P_NO_GAIN_VALUE
            else:
                for i in range(nres):
                    R[i] = resultants[i, y, x]
                    if not isfinite(R[i]):
                        dq[i] = dq[i] | G_DO_NOT_USE
                    R[i] = R[i] * g
                sig2 = (rn * g) * (rn * g)
                _fit_pixel(&pat, R, dq, work, stack, sig2, use_jump,
                           threshold_intercept, threshold_constant, jump_refit, refit_screen, res3)
                slope = res3[0] / g
                vr = res3[1] / (g * g)
                vp = res3[2] / (g * g)
                err = sqrt(vp + vr)
            anyjump = False
            allsat = True
            allbad = True
            for i in range(nres):
                q = dq[i]
                o_gdq[i, y, x] = q
                if q & G_JUMP_DET:
                    anyjump = True
                    if not (orig[i] & G_JUMP_DET):
                        nj = nj + 1
                if not (q & G_SATURATED):
                    allsat = False
                if not (q & (G_SATURATED | G_DO_NOT_USE)):
                    allbad = False
            if anyjump:
                pdq = pdq | P_JUMP_DET
            if allsat:
                pdq = pdq | P_SATURATED
            if allbad or not isfinite(slope) or not (err > 0.0):
                pdq = pdq | P_DO_NOT_USE
            o_slope[y, x] = <float>slope
            o_vp[y, x] = <float>vp
            o_vr[y, x] = <float>vr
            o_err[y, x] = <float>err
            o_dq[y, x] = pdq
            if want_dumo:
                o_dumo[y, x] = <float>(acc - <double><float>slope)
        o_nj[y] = nj
    return slope_a, vp_a, vr_a, err_a, dq_a, gdq_a, nj_a, (dumo_a if want_dumo else None)


def jump_positions(const u8[:, :, :] groupdq_in, const u8[:, :, :] groupdq_out,
                   const i64[::1] row_offsets, int nthreads=0):
    """(resultant, y, x) of resultants that carry JUMP_DET in ``groupdq_out`` but not in
    ``groupdq_in``, ordered by y, x, resultant.  ``row_offsets[y]`` is the index of row y's
    first entry (exclusive cumulative sum of the per-row counts; length ny + 1)."""
    cdef Py_ssize_t nres = groupdq_out.shape[0], ny = groupdq_out.shape[1], nx = groupdq_out.shape[2]
    cdef Py_ssize_t y, x, r, k
    out_a = np.empty((row_offsets[ny], 3), dtype=np.int32)
    cdef i32[:, ::1] out = out_a
    if nthreads <= 0:
        nthreads = romancore_max_threads()
    for y in prange(ny, nogil=True, schedule="static", num_threads=nthreads):
        k = row_offsets[y]
        for x in range(nx):
            for r in range(nres):
                if (groupdq_out[r, y, x] & G_JUMP_DET) and not (groupdq_in[r, y, x] & G_JUMP_DET):
                    out[k, 0] = <i32>r
                    out[k, 1] = <i32>y
                    out[k, 2] = <i32>x
                    k = k + 1
    return out_a

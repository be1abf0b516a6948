import CKernels

/// The fast path each C kernel takes on this CPU (each chooses at run time, from the CPU's
/// features): what `mtl-model --version` shows, so that a timing can be read against the
/// hardware it ran on (docs/PERFORMANCE.md measures each path).
public enum Kernels {
    /// One line: "CRC-32 vpclmulqdq-avx2, dense avx2-fma, int8 avx2, int4 avx2" on a Zen 3.
    public static var summary: String {
        "CRC-32 \(CRC32.implementation), dense \(String(cString: mtlm_dense_kernel_name())), "
            + "int8 \(String(cString: mtlm_int8_kernel_name())), int4 \(String(cString: mtlm_int4_kernel_name()))"
    }
}

/* gpu/exl3_cb.h — the EXL3 codebooks' constants (docs/exl3-format.md §2),
 * defined once for the CPU backend (gpu/cpu/exl3.c, scalar and AVX2) and
 * the CUDA kernels (gpu/cuda/exl3_dev.cuh).  Plain macros: C and CUDA
 * include it alike.  Internal to gpu/.
 *
 * A state s is a 16-bit trellis window:
 *   3INST: x = s * EXL3_3INST_MUL + EXL3_3INST_ADD   (mod 2^32)
 *   MCG:   x = s * EXL3_MCG_MUL                      (mod 2^32)
 *          then x = (x & EXL3_CB_MASK) ^ EXL3_CB_XOR and the value is the
 *          f16 sum of x's two halves (as f16 bit patterns);
 *   MUL1:  h = 1024 + byte sum of s * EXL3_MUL1_MUL (f16 bits 0x6400 +
 *          sum, exact), value = f16(h * K_INV + K_BIAS) with K_INV and
 *          K_BIAS the f16 bit patterns below (their exact f32 values
 *          beside them).
 */
#ifndef TERN_GPU_EXL3_CB_H
#define TERN_GPU_EXL3_CB_H

#define EXL3_3INST_MUL 89226354u
#define EXL3_3INST_ADD 64248484u
#define EXL3_MCG_MUL 0xCBAC1FEDu
#define EXL3_CB_MASK 0x8FFF8FFFu
#define EXL3_CB_XOR 0x3B603B60u
#define EXL3_MUL1_MUL 0x83DCD12Du
#define EXL3_MUL1_KINV 0x1EEEu
#define EXL3_MUL1_KBIAS 0xC931u
#define EXL3_MUL1_KINV_F 0.00676727294921875f /* 1774 * 2^-18 */
#define EXL3_MUL1_KBIAS_F (-10.3828125f)

#endif

/*
 * fuzz_main — libFuzzer's entry point for one harness body (spf.h).
 *
 * Built once per target with -DSPF_ENTRY=spf_<target>_one by `make fuzz`;
 * the body itself lives in tests/fuzz/spf_<target>.c, which the Criterion
 * suite links too.
 */
#include "spf.h"

#ifndef SPF_ENTRY
#error "build with -DSPF_ENTRY=spf_<target>_one"
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return SPF_ENTRY(data, size);
}

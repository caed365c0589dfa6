# The Makefile of a boardnet native module (firmware/natmod.py copies it into the build
# folder): MicroPython's py/dynruntime.mk does the work. Given on the command line:
# MPY_DIR, MOD, SRC, ARCH, PYTHON (with pyelftools and ar), for Python sources MPY_CROSS,
# SOFT_FLOAT=1 when the module includes boardnet_native_float.h, and BOARDNET_CFLAGS.
LINK_RUNTIME = 1
# -O3 after dynruntime.mk's -Os: the optimisation the pico-sdk's default (Release) build
# gives the same header in boardnet's C firmware; on the RP2040 it makes an 8-16-1 q15
# inference 14% faster (3,028 cycles against 3,512) for 1.7 KB more code, f32 3% faster. -ffp-contract=off: no
# fused multiply-add, as the header asks. -fno-tree-loop-distribute-patterns: gcc would turn
# copy loops into memcpy and strlen calls, and a native module links no C library.
CFLAGS_EXTRA += -O3 -ffp-contract=off -fno-tree-loop-distribute-patterns $(BOARDNET_CFLAGS)

include $(MPY_DIR)/py/dynruntime.mk

ifeq ($(ARCH)$(SOFT_FLOAT),armv6m1)
# libgcc's single-precision routines under boardnet names: boardnet_native_float.h defines
# __aeabi_fadd and friends itself (the RP2040's ROM routines where there is one), and calls
# these elsewhere.
LIBGCC_FLOAT = addsf3 subsf3 mulsf3 divsf3
LIBGCC_FLOAT_O = $(addprefix $(BUILD)/libgcc-,$(addsuffix .o,$(LIBGCC_FLOAT)))
$(BUILD)/$(MOD).native.mpy: $(LIBGCC_FLOAT_O)
$(BUILD)/libgcc-%.o: | $(BUILD_DIRS)
	$(ECHO) "LIBGCC $*"
	$(Q)cd $(BUILD) && $(CROSS)ar x $(LIBGCC_PATH) $*.o
	$(Q)$(CROSS)objcopy \
	    --redefine-sym __aeabi_fadd=boardnet_libgcc_fadd --redefine-sym __aeabi_fsub=boardnet_libgcc_fsub \
	    --redefine-sym __aeabi_fmul=boardnet_libgcc_fmul --redefine-sym __aeabi_fdiv=boardnet_libgcc_fdiv \
	    $(BUILD)/$*.o $@
endif

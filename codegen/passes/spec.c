/* Argument specialization: XK_SPEC_ONE arguments become the constant 1 in
 * the IR (folding then removes the work they guarded or scaled);
 * ALIGN16/DIV16 are recorded for the lowerings (alignment, llvm.assume). */
#include "passes.h"

#include <string.h>

int xk_spec_apply(xk_func *f, const int *spec, xk_diag *d) {
  for (int i = 0; i < f->nargs; i++) {
    int s = spec ? spec[i] : 0, dt = f->args[i].type.dtype;
    int is_int = dt == XK_I32 || dt == XK_I64;
    if (s & ~(XK_SPEC_ALIGN16 | XK_SPEC_DIV16 | XK_SPEC_ONE) ||
        ((s & XK_SPEC_ALIGN16) && dt != XK_PTR) ||
        ((s & (XK_SPEC_DIV16 | XK_SPEC_ONE)) && !is_int) ||
        ((s & XK_SPEC_DIV16) && (s & XK_SPEC_ONE)))
      return xk_diag_set(d,
                         "%s: specialization 0x%x does not apply to argument "
                         "'%s' of %s",
                         f->file, s, f->args[i].name, f->name);
    f->args[i].spec = s;
    if (!(s & XK_SPEC_ONE))
      continue;
    /* a CONST at the head of the entry block replaces the argument */
    xk_attr at;
    memset(&at, 0, sizeof at);
    at.i = 1;
    xk_loc loc = {0};
    int one = xk_emit(f, 0, XK_OP_CONST, NULL, 0, f->args[i].type, at, loc);
    xk_block *b = &f->blocks[0];
    int id = b->ops[b->nops - 1];
    memmove(b->ops + 1, b->ops, (size_t)(b->nops - 1) * sizeof *b->ops);
    b->ops[0] = id;
    xk_func_replace_uses(f, f->blocks[0].args[i], one);
  }
  return 0;
}

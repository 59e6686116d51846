--[[ xk prelude: runs in the sandboxed Lua state before kernels.xk.

A kernel file declares kernels; each body is traced once per specialization:

  kernel "vadd" {
    args   = { {"X", ptr(f32)}, {"Y", ptr(f32)}, {"Z", ptr(f32)}, {"N", i32} },
    consts = { {"BLOCK", 1024}, {"num_warps", 4} },
    tune   = { BLOCK = {256, 512, 1024}, num_warps = {2, 4, 8} },
    key    = { "N" },
    grid   = { "cdiv(N, BLOCK)" },
  }(function(a, c)
    local i = program_id(0) * c.BLOCK + arange(c.BLOCK)
    local m = i:lt(a.N)
    store(a.Z + i, load(a.X + i, { mask = m }) + load(a.Y + i, { mask = m }),
          { mask = m })
  end)

Argument order matters (it is the launch ABI) and Lua tables have no order,
so `args` and `consts` are ordered lists of {name, value} pairs; a keyed
table such as { X = ptr(f32) } is refused. The other fields:
  args    scalars are i32, i64 or f32; pointers are ptr(dtype)
  consts  integer constexprs (each value is a specialization); the entries
          num_warps and num_stages set launch defaults (else 4 and 1) and
          are not constexprs
  tune    NAME = {values...}: the autotuner's space over consts, num_warps
          and num_stages (kept sorted by name)
  key     names (consts or integer args) the tune cache keys on
  keys    NAME = grid for key names: the points xkv-tune measures and how a
          call's value is bucketed (pow2, round_up, round_down below; a plain
          ascending list buckets to the nearest value in log space)
  grid    up to three launch-grid expressions over integer args and consts
          with + - * / % and cdiv/min/max

In a body, `a.NAME` is the argument as a scalar tile and `c.NAME` the
constexpr as a Lua integer; reading a name the kernel does not have is an
error. Lua numbers and Lua control flow are compile time; tiles record IR.
Tiles: arithmetic and bitwise operators (numpy broadcasting and promotion
i1 < i32 < i64 < f16, bf16 < f32), '/' divides truly, '//' and '%' are C
integer division and remainder; comparisons are methods (x:lt(y), ...)
because Lua turns < into a boolean; x:col(), x:row(), x:to(dtype),
x.shape, x.dtype, x.rank. Ops: see DESIGN.md and the helpers below.
barrier() makes the program's stores before it visible to all of its
threads' loads after it (CUDA's __syncthreads): a tile stored to global
memory and loaded back in another shape or as a dot operand needs one in
between, since other threads of the program load what one thread stored. ]]

-- dtypes are their names; pointer types are "ptr<elem>"
i1, i32, i64, f16, bf16, f32 = "i1", "i32", "i64", "f16", "bf16", "f32"

local elem_dtypes = { i1 = true, i32 = true, i64 = true, f16 = true,
                      bf16 = true, f32 = true }

function ptr(dt)
  if type(dt) ~= "string" or not elem_dtypes[dt] then
    error(("ptr: unknown dtype '%s' (i1, i32, i64, f16, bf16, f32)")
          :format(tostring(dt)), 2)
  end
  return "ptr<" .. dt .. ">"
end

-- ceil(a / b) for positive integers: on Lua numbers at trace time, on
-- integer tiles in the kernel
function cdiv(a, b)
  return (a + b - 1) // b
end

-- Key grids (the `keys` field). pow2(lo, hi): lo, 2 lo, 4 lo, ... up to
-- hi, a call bucketed to the nearest in log space; round_up{...} /
-- round_down{...}: the listed values, a call taking the next one up / down.
function pow2(lo, hi)
  local t, v = { round = "nearest" }, lo
  while v <= hi do
    t[#t + 1] = v
    v = v * 2
  end
  return t
end

function round_up(t)
  t.round = "up"
  return t
end

function round_down(t)
  t.round = "down"
  return t
end

-- Rotary embedding with llama2.c's adjacent-pair convention, applied to the
-- columns d of k [..., D]:
--   out[2i]   = k[2i] cos_i - k[2i+1] sin_i
--   out[2i+1] = k[2i] sin_i + k[2i+1] cos_i
-- k_pair is k with the columns of each pair swapped (k_pair[:, d] =
-- k[:, d ~ 1]; a kernel gets it from a second dot with B's columns
-- permuted, which needs no register shuffles), and cos_t/sin_t hold
-- cos/sin of pair d // 2 for every column d.
function rope(k, k_pair, cos_t, sin_t)
  local d = arange(k.shape[k.rank])
  local sign = where((d & 1):eq(0), -1.0, 1.0)
  return k * cos_t + k_pair * sin_t * sign
end

-- One step of the streaming ("online") softmax: m is the running max and s
-- the running sum of exp(x - m) over the blocks seen so far; folds in the
-- block x along `axis` (default: the last) and returns the new m and s.
-- The first block must hold a finite value, or exp(-inf - -inf) is NaN.
function online_softmax(m, s, x, axis)
  axis = axis or x.rank - 1
  local m_new = maximum(m, max(x, axis))
  local p = exp(x - expand_dims(m_new, axis))
  return m_new, s * exp(m - m_new) + sum(p, axis)
end

-- Reading an undefined global is a typo, not nil.
setmetatable(_G, {
  __index = function(_, name)
    error(("unknown name '%s' (not an op, a dtype or a global defined " ..
           "so far)"):format(tostring(name)), 2)
  end,
})

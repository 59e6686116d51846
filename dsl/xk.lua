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
x.shape (dims counted from 0, like axis), x.dtype, x.rank. Ops: see DESIGN.md and the helpers below.
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
  local d = arange(k.shape[k.rank - 1])
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

-- when(cond, fn): if_ without an else branch and without results
function when(cond, fn)
  if_(cond, fn)
end

-- return_if(cond): ends the program when the scalar cond holds (Triton's
-- early `return` under an `if`)
function return_if(cond)
  if_(cond, exit)
end

-- Block pointers (Triton's tl.make_block_ptr): a block_shape window at
-- `offsets` into a tensor of `shape` and `strides` (elements) at `base`.
-- They are pointer arithmetic and masks written here, not an IR type:
-- load/store build the pointer tile and the boundary_check masks, advance
-- returns a moved copy, and for_range carries one as its offsets (scalar
-- i32 tiles), so the IR and every target see only what they already know.
-- `order` (the dims from fastest to slowest in memory) is checked and kept
-- for Triton compatibility; the layout pass finds contiguity itself.
local block_ptr = {}
local function is_block_ptr(v) return getmetatable(v) == block_ptr end
local function fail(fmt, ...) error(fmt:format(...), 0) end

local function int_list(what, v, rank)
  if type(v) ~= "table" or getmetatable(v) then
    fail("make_block_ptr: %s must be a list (got a %s)", what, type(v))
  end
  if rank and #v ~= rank then
    fail("make_block_ptr: %s has %d entries for a rank-%d block", what, #v,
         rank)
  end
  return v
end

function make_block_ptr(base, shape, strides, offsets, block_shape, order)
  block_shape = int_list("block_shape", block_shape)
  local r = #block_shape
  if r < 1 or r > 2 then
    fail("make_block_ptr: blocks have rank 1 or 2 (got %d)", r)
  end
  for d = 1, r do
    local b = block_shape[d]
    if math.type(b) ~= "integer" or b < 1 or b & (b - 1) ~= 0 then
      fail("make_block_ptr: block_shape[%d] must be a power of two (got %s)",
           d - 1, tostring(b))
    end
  end
  order = int_list("order", order or (r == 2 and { 1, 0 } or { 0 }), r)
  local seen = {}
  for d = 1, r do
    local o = order[d]
    if math.type(o) ~= "integer" or o < 0 or o >= r or seen[o] then
      fail("make_block_ptr: order must be a permutation of 0..%d", r - 1)
    end
    seen[o] = true
  end
  return setmetatable({ base = base, shape = int_list("shape", shape, r),
                        strides = int_list("strides", strides, r),
                        offsets = int_list("offsets", offsets, r),
                        block_shape = block_shape, order = order }, block_ptr)
end

local function with_offsets(bp, offsets)
  local n = setmetatable({}, block_ptr)
  for k, v in pairs(bp) do n[k] = v end
  n.offsets = offsets
  return n
end

-- bp moved by `offsets` (a list of integers or i32 scalar tiles)
function advance(bp, offsets)
  if not is_block_ptr(bp) then
    fail("advance: not a block pointer (a %s): make one with make_block_ptr",
         type(bp))
  end
  local r = #bp.block_shape
  if type(offsets) ~= "table" or #offsets ~= r then
    fail("advance: give %d offsets, one per dim of the block", r)
  end
  local moved = {}
  for d = 1, r do moved[d] = bp.offsets[d] + offsets[d] end
  return with_offsets(bp, moved)
end

-- The pointer tile of bp's block and the mask of its dims in `check`.
local function block_tile(bp, check, op)
  local r = #bp.block_shape
  local want = {}
  if check ~= nil then
    if type(check) ~= "table" then
      fail("%s: boundary_check must be a list of dims (got a %s)", op,
           type(check))
    end
    for _, d in ipairs(check) do
      if math.type(d) ~= "integer" or d < 0 or d >= r then
        fail("%s: boundary_check dim %s is not a dim of a rank-%d block", op,
             tostring(d), r)
      end
      want[d + 1] = true
    end
  end
  local p, mask = bp.base, nil
  for d = 1, r do
    local idx = bp.offsets[d] + arange(bp.block_shape[d])
    if r == 2 then idx = d == 1 and idx:col() or idx:row() end
    p = p + idx * bp.strides[d]
    if want[d] then
      local m = idx:ge(0) & idx:lt(bp.shape[d])
      mask = mask and (mask & m) or m
    end
  end
  return p, mask
end

local function block_opts(op, o, known)
  o = o or {}
  if type(o) ~= "table" then
    fail("%s: options must be a table (got a %s)", op, type(o))
  end
  for k in pairs(o) do
    if not known[k] then
      fail("%s: unknown option '%s' for a block pointer (boundary_check%s)",
           op, tostring(k), known.padding_option and ", padding_option" or "")
    end
  end
  return o
end

local pointer_load, pointer_store, device_for = load, store, for_range
local padding = { zero = 0, nan = 0 / 0 }

function load(p, o)
  if not is_block_ptr(p) then return pointer_load(p, o) end
  o = block_opts("load", o, { boundary_check = true, padding_option = true })
  local pad = o.padding_option or "zero"
  if padding[pad] == nil then
    fail("load: padding_option must be \"zero\" or \"nan\" (got %s)",
         tostring(pad))
  end
  local ptrs, mask = block_tile(p, o.boundary_check, "load")
  if not mask then return pointer_load(ptrs) end
  return pointer_load(ptrs, { mask = mask, other = padding[pad] })
end

function store(p, v, o)
  if not is_block_ptr(p) then return pointer_store(p, v, o) end
  o = block_opts("store", o, { boundary_check = true })
  local ptrs, mask = block_tile(p, o.boundary_check, "store")
  return pointer_store(ptrs, v, mask and { mask = mask } or nil)
end

-- for_range carries a block pointer as its offsets; the rest of it is loop
-- invariant, so the body must return the carried one advanced (or as is).
function for_range(lo, hi, step, init, body, opts)
  local single = init ~= nil and (type(init) ~= "table" or is_block_ptr(init))
  local list = single and { init } or init or {}
  local has_bp = false
  for _, v in ipairs(list) do has_bp = has_bp or is_block_ptr(v) end
  if not has_bp or type(body) ~= "function" then
    return device_for(lo, hi, step, init, body, opts)
  end
  local n = #list
  local function flatten(vals, what)
    local flat = {}
    for i = 1, n do
      local v, bp = vals[i], list[i]
      if is_block_ptr(bp) then
        if not is_block_ptr(v) or not rawequal(v.base, bp.base) then
          fail("for_range: %s %s for carried block pointer %d: return it " ..
               "moved by advance(bp, offsets)", what,
               is_block_ptr(v) and "another block pointer" or
               "a " .. type(v), i)
        end
        for d = 1, #bp.offsets do flat[#flat + 1] = v.offsets[d] end
      else
        flat[#flat + 1] = v
      end
    end
    return flat
  end
  local function rebuild(flat)
    local vals, k = {}, 1
    for i = 1, n do
      local bp = list[i]
      if is_block_ptr(bp) then
        local offs = {}
        for d = 1, #bp.offsets do
          offs[d], k = flat[k], k + 1
        end
        vals[i] = with_offsets(bp, offs)
      else
        vals[i], k = flat[k], k + 1
      end
    end
    return vals
  end
  local out = table.pack(device_for(lo, hi, step, flatten(list, "got"),
    function(i, ...)
      local r = table.pack(body(i, table.unpack(rebuild({ ... }), 1, n)))
      if r.n ~= n then
        fail("for_range: body returned %d value%s for %d carried value%s",
             r.n, r.n == 1 and "" or "s", n, n == 1 and "" or "s")
      end
      return table.unpack(flatten(r, "body returned"))
    end, opts))
  local vals = rebuild(out)
  if single then return vals[1] end
  return table.unpack(vals, 1, n)
end

-- Reading an undefined global is a typo, not nil.
setmetatable(_G, {
  __index = function(_, name)
    error(("unknown name '%s' (not an op, a dtype or a global defined " ..
           "so far)"):format(tostring(name)), 2)
  end,
})

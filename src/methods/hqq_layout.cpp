// The Hugging Face layout of an HQQ module: what hqq's HQQLinear.state_dict()
// returns (hqq/core/quantize.py) and transformers saves for every quantized
// nn.Linear "<module>" (quantizers/quantizer_hqq.py loads them back by handing
// the "<module>.*" entries, keyed by their last name component, to
// HQQLinear.load_state_dict).
//
// HQQLinear keeps its meta as Python values; with encoded_state_dict = True
// (the default) hqq/core/utils.py encode_safetensor_type turns each into a
// tensor so safetensors can hold it, and decode_safetensor_type reads it back:
//   bool  -> uint8 scalar (shape [])       int   -> int32 scalar (shape [])
//   str   -> uint8 [len] of the characters torch.Size -> int64 [ndim]
//   torch.dtype -> its str ("torch.float16") as uint8 characters
// We write exactly that, so HQQLinear.load_state_dict decodes our modules;
// and we read what it writes (compute dtype f16, bf16 or f32).
//
// Per module (19 keys; transformers' update_expected_keys expects all but bias):
//   W_q                  uint8 [step, width] (int32 for "3bit_32")  BitPack'ed codes
//   scale, zero          compute dtype, [n_groups, 1] (axis 1) or [1, n_groups] (axis 0);
//                        scale is the dequantization multiplier: W = (W_q - zero) * scale
//   shape                int64 [2] = [n_out, n_in]
//   nbits, group_size, axis                    int32 scalars
//   packing              str "4bit_u8" | "3bit_32" | ...
//   unpack_view_dtype    dtype "torch.uint8" | "torch.int32"
//   compute_dtype        dtype of scale/zero ("torch.float16")
//   view_as_float, quant_scale, quant_zero, offload_meta, channel_wise,
//   optimize, round_zero, encoded_state_dict, stores_quant_config   bool scalars
//   bias                 (optional; the model's bias, written by the generic writer)
// The weight_quant_params keys (nbits, channel_wise, group_size, optimize,
// round_zero, axis, view_as_float) share the meta's entries, as in hqq.
#include <cstring>

#include <fmt/format.h>

#include "core/half.h"
#include "lowbit/error.h"
#include "methods/hqq.h"

namespace lowbit {

namespace {

HfModuleTensor scalar_i32(const char* key, int32_t v) {
  HfModuleTensor t{key, DType::I32, {}, std::vector<uint8_t>(4)};
  std::memcpy(t.bytes.data(), &v, 4);
  return t;
}
HfModuleTensor scalar_bool(const char* key, bool v) { return HfModuleTensor{key, DType::U8, {}, {uint8_t(v ? 1 : 0)}}; }
HfModuleTensor str_tensor(const char* key, const std::string& s) {
  return HfModuleTensor{key, DType::U8, {int64_t(s.size())}, std::vector<uint8_t>(s.begin(), s.end())};
}

const char* torch_dtype_name(DType t) {
  switch (t) {
    case DType::F16: return "torch.float16";
    case DType::BF16: return "torch.bfloat16";
    default: return "torch.float32";
  }
}

HfModuleTensor meta_tensor(const char* key, const std::vector<float>& v, DType dt, int axis) {
  const int64_t G = int64_t(v.size());
  HfModuleTensor t{key, dt, axis == 1 ? std::vector<int64_t>{G, 1} : std::vector<int64_t>{1, G}, {}};
  t.bytes.resize(size_t(G) * dtype_size(dt));
  for (int64_t i = 0; i < G; ++i) {
    if (dt == DType::F32) {
      std::memcpy(t.bytes.data() + 4 * i, &v[size_t(i)], 4);
    } else {
      const uint16_t h = dt == DType::F16 ? f32_to_f16(v[size_t(i)]) : f32_to_bf16(v[size_t(i)]);
      std::memcpy(t.bytes.data() + 2 * i, &h, 2);
    }
  }
  return t;
}

// Reads the decoded module entries with errors naming `where` and the key.
class Parts {
 public:
  Parts(const std::map<std::string, const TensorView*>& parts, std::string where) : parts_(parts), where_(std::move(where)) {}

  const TensorView* find(const std::string& key) const {
    auto it = parts_.find(key);
    return it == parts_.end() ? nullptr : it->second;
  }
  const TensorView& need(const std::string& key) const {
    const TensorView* t = find(key);
    if (!t) fail(where_ + ": " + key, "hqq module has no '" + key + "' tensor",
                 "an HQQ module stores W_q, scale, zero, shape, nbits, group_size, axis and packing (HQQLinear.state_dict)");
    return *t;
  }
  std::string at(const std::string& key) const { return where_ + ": " + key; }

  // Bytes of t, checked against its shape and dtype.
  const uint8_t* data(const std::string& key, const TensorView& t) const {
    const size_t need_bytes = size_t(t.numel()) * dtype_size(t.dtype);
    if (t.nbytes < need_bytes || (need_bytes > 0 && !t.data))
      fail(at(key), fmt::format("tensor {} {} holds {} bytes, needs {}", dtype_name(t.dtype), t.shape_str(), t.nbytes, need_bytes),
           "the file is truncated or corrupt");
    return static_cast<const uint8_t*>(t.data);
  }

  int64_t integer(const std::string& key) const {
    const TensorView& t = need(key);
    if (t.numel() != 1)
      fail(at(key), fmt::format("expected one integer, got shape {}", t.shape_str()), "hqq encodes ints as int32 scalars");
    const uint8_t* p = data(key, t);
    switch (t.dtype) {
      case DType::I32: { int32_t v; std::memcpy(&v, p, 4); return v; }
      case DType::I64: { int64_t v; std::memcpy(&v, p, 8); return v; }
      case DType::I16: { int16_t v; std::memcpy(&v, p, 2); return v; }
      case DType::I8: return int8_t(p[0]);
      case DType::U8:
      case DType::BOOL: return p[0];
      default:
        fail(at(key), fmt::format("expected an integer tensor, got {}", dtype_name(t.dtype)), "hqq encodes ints as int32 scalars");
    }
  }
  // Optional bool (false when absent).
  bool flag(const std::string& key) const {
    if (!find(key)) return false;
    const int64_t v = integer(key);
    if (v != 0 && v != 1) fail(at(key), fmt::format("flag has value {}, not 0 or 1", v), "hqq encodes bools as uint8 0/1");
    return v == 1;
  }
  // Optional string (empty when absent).
  std::string str(const std::string& key) const {
    const TensorView* t = find(key);
    if (!t) return {};
    if ((t->dtype != DType::U8 && t->dtype != DType::I8) || t->shape.size() > 1)
      fail(at(key), fmt::format("expected a uint8 string, got {} {}", dtype_name(t->dtype), t->shape_str()),
           "hqq encodes strings as uint8 character codes");
    const uint8_t* p = data(key, *t);
    return std::string(reinterpret_cast<const char*>(p), size_t(t->numel()));
  }

  std::vector<float> floats(const std::string& key, int64_t G, int axis, DType& dt) const {
    const TensorView& t = need(key);
    if (t.dtype != DType::F16 && t.dtype != DType::BF16 && t.dtype != DType::F32)
      fail(at(key), fmt::format("dtype {} is not f16, bf16 or f32", dtype_name(t.dtype)), "hqq stores scale/zero in the compute dtype");
    const std::vector<int64_t> want = axis == 1 ? std::vector<int64_t>{G, 1} : std::vector<int64_t>{1, G};
    if (t.shape != want && !(t.shape.size() == 1 && t.shape[0] == G))
      fail(at(key), fmt::format("shape {} does not match {} groups on axis {} (expected [{}, {}])", t.shape_str(), G, axis,
                                want[0], want[1]),
           "the module's shape/group_size/axis and its meta disagree");
    const uint8_t* p = data(key, t);
    std::vector<float> v(static_cast<size_t>(G));
    for (int64_t i = 0; i < G; ++i) {
      if (t.dtype == DType::F32) {
        std::memcpy(&v[size_t(i)], p + 4 * i, 4);
      } else {
        uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        v[size_t(i)] = t.dtype == DType::F16 ? f16_to_f32(h) : bf16_to_f32(h);
      }
      if (!std::isfinite(v[size_t(i)]))
        fail(at(key), fmt::format("group {} holds a non-finite value ({})", i, v[size_t(i)]), "the checkpoint is corrupt");
    }
    dt = t.dtype;
    return v;
  }

 private:
  const std::map<std::string, const TensorView*>& parts_;
  std::string where_;
};

}  // namespace

std::vector<std::string> hqq_hf_module_suffixes() {
  return {"W_q",          "scale",        "zero",          "shape",         "nbits",
          "group_size",   "axis",         "packing",       "unpack_view_dtype", "view_as_float",
          "quant_scale",  "quant_zero",   "compute_dtype", "offload_meta",  "encoded_state_dict",
          "stores_quant_config", "channel_wise", "optimize", "round_zero"};
  // "<module>.bias" is a plain tensor: the generic loader maps it like any other.
}

std::vector<HfModuleTensor> hqq_hf_module_tensors(const HqqLinear& q) {
  const HqqShape& s = q.shape();
  std::vector<HfModuleTensor> out;
  HfModuleTensor wq{"W_q", s.nbits == 3 ? DType::I32 : DType::U8, {s.packed_rows(), s.pack_width()}, q.packed()};
  out.push_back(std::move(wq));
  out.push_back(meta_tensor("scale", q.scale(), q.meta_dtype(), s.axis));
  out.push_back(meta_tensor("zero", q.zero(), q.meta_dtype(), s.axis));
  {
    HfModuleTensor shape{"shape", DType::I64, {2}, std::vector<uint8_t>(16)};
    const int64_t dims[2] = {s.n_out, s.n_in};
    std::memcpy(shape.bytes.data(), dims, 16);
    out.push_back(std::move(shape));
  }
  out.push_back(scalar_i32("nbits", s.nbits));
  out.push_back(scalar_i32("group_size", int32_t(s.group_size)));
  out.push_back(scalar_i32("axis", s.axis));
  out.push_back(str_tensor("packing", s.packing()));
  out.push_back(str_tensor("unpack_view_dtype", s.nbits == 3 ? "torch.int32" : "torch.uint8"));
  out.push_back(str_tensor("compute_dtype", torch_dtype_name(q.meta_dtype())));
  out.push_back(scalar_bool("view_as_float", false));
  out.push_back(scalar_bool("quant_scale", false));
  out.push_back(scalar_bool("quant_zero", false));
  out.push_back(scalar_bool("offload_meta", false));
  out.push_back(scalar_bool("encoded_state_dict", true));
  out.push_back(scalar_bool("stores_quant_config", true));
  out.push_back(scalar_bool("channel_wise", true));
  out.push_back(scalar_bool("optimize", q.options().optimize));
  out.push_back(scalar_bool("round_zero", q.options().round_zero));
  return out;
}

std::shared_ptr<HqqLinear> hqq_load_hf_module(const std::map<std::string, const TensorView*>& parts, int64_t n_out,
                                              int64_t n_in, const std::string& where) {
  const Parts p(parts, where);
  // shape: [n_out, n_in] (int64 as torch.Size encodes; int32 accepted)
  {
    const TensorView& t = p.need("shape");
    if ((t.dtype != DType::I64 && t.dtype != DType::I32) || t.numel() != 2)
      fail(p.at("shape"), fmt::format("expected int64 [2], got {} {}", dtype_name(t.dtype), t.shape_str()),
           "hqq encodes torch.Size as an int64 tensor");
    const uint8_t* d = p.data("shape", t);
    int64_t dims[2];
    for (int i = 0; i < 2; ++i) {
      if (t.dtype == DType::I64) {
        std::memcpy(&dims[i], d + 8 * i, 8);
      } else {
        int32_t v;
        std::memcpy(&v, d + 4 * i, 4);
        dims[i] = v;
      }
    }
    if (dims[0] != n_out || dims[1] != n_in)
      fail(p.at("shape"), fmt::format("[{}, {}] does not match the model's linear [{}, {}]", dims[0], dims[1], n_out, n_in),
           "the checkpoint belongs to another model config");
  }
  HqqShape s;
  s.n_out = n_out;
  s.n_in = n_in;
  s.nbits = int(p.integer("nbits"));
  s.group_size = p.integer("group_size");
  s.axis = int(p.integer("axis"));
  s.validate(where);
  if (p.find("channel_wise") && !p.flag("channel_wise"))
    fail(p.at("channel_wise"), "channel_wise = False (one scale for the whole tensor) is not supported", "re-quantize with channel_wise = True");
  if (p.flag("quant_scale") || p.flag("quant_zero"))
    fail(p.at(p.flag("quant_scale") ? "quant_scale" : "quant_zero"), "quantized scale/zero meta is not supported",
         "hqq deprecated quant_scale/quant_zero; re-quantize without them");
  if (p.flag("offload_meta")) fail(p.at("offload_meta"), "offloaded meta (zero_scale) is not supported", "save with offload_meta = False");
  const std::string packing = p.str("packing");
  if (packing != s.packing())
    fail(p.at("packing"), fmt::format("packing '{}' does not match nbits = {} (expected '{}')", packing, s.nbits, s.packing()),
         "hqq packs 8/4/2/1 bits as u8 and 3 bits as int32");
  const std::string view = p.str("unpack_view_dtype");
  const char* want_view = s.nbits == 3 ? "torch.int32" : "torch.uint8";
  if (!view.empty() && view != want_view)
    fail(p.at("unpack_view_dtype"), fmt::format("'{}' does not match packing '{}' (expected '{}')", view, packing, want_view));
  const bool as_float = p.flag("view_as_float");

  // W_q
  const TensorView& wq = p.need("W_q");
  const DType want_dt = s.nbits == 3 ? DType::I32 : DType::U8;
  const std::vector<int64_t> want_shape{s.packed_rows(), s.pack_width()};
  if (as_float) {
    if (wq.dtype != DType::F16 && wq.dtype != DType::BF16 && wq.dtype != DType::F32)
      fail(p.at("W_q"), fmt::format("view_as_float is set but W_q is {}", dtype_name(wq.dtype)), "expected the compute dtype");
    if (size_t(wq.numel()) * dtype_size(wq.dtype) != s.packed_bytes())
      fail(p.at("W_q"), fmt::format("{} {} holds {} bytes of codes, expected {}", dtype_name(wq.dtype), wq.shape_str(),
                                    size_t(wq.numel()) * dtype_size(wq.dtype), s.packed_bytes()),
           "the module's shape/nbits/group_size and W_q disagree");
  } else if (wq.dtype != want_dt || wq.shape != want_shape) {
    fail(p.at("W_q"), fmt::format("got {} {}, expected {} [{}, {}] for {}-bit g{} axis {} of [{}, {}]", dtype_name(wq.dtype),
                                  wq.shape_str(), dtype_name(want_dt), want_shape[0], want_shape[1], s.nbits, s.group_size,
                                  s.axis, n_out, n_in),
         "the module's shape/nbits/group_size and W_q disagree");
  }
  const uint8_t* wq_data = p.data("W_q", wq);
  std::vector<uint8_t> packed(wq_data, wq_data + s.packed_bytes());
  if (s.nbits == 3)
    for (size_t i = 0; i < packed.size(); i += 4) {
      uint32_t u;
      std::memcpy(&u, packed.data() + i, 4);
      if (u >> 30)
        fail(p.at("W_q"), fmt::format("int32 unit {} has bits above the 10 3-bit codes set", i / 4), "the file is corrupt");
    }

  DType sdt = DType::F16, zdt = DType::F16;
  std::vector<float> scale = p.floats("scale", s.n_groups(), s.axis, sdt);
  std::vector<float> zero = p.floats("zero", s.n_groups(), s.axis, zdt);
  if (sdt != zdt)
    fail(p.at("zero"), fmt::format("dtype {} differs from scale's {}", dtype_name(zdt), dtype_name(sdt)),
         "hqq keeps both in the compute dtype");
  HqqOptions opts;
  opts.optimize = p.find("optimize") ? p.flag("optimize") : true;
  opts.round_zero = p.flag("round_zero");
  return std::make_shared<HqqLinear>(s, std::move(packed), std::move(scale), std::move(zero), sdt, opts);
}

}  // namespace lowbit

// Fuzzes every registered method's Hugging Face module reader
// (Quantizer::load_hf_module: bitsandbytes 4-bit and LLM.int8, HQQ, k-means,
// W8A8 / W4A8, GPTQ / AWQ through the registry). The first bytes pick the
// method, its config and the layer shape; a valid module of that shape is
// made by quantizing a fixed weight (hf_module_tensors), then each of its
// tensors is kept, dropped, re-typed, re-shaped or has its bytes replaced by
// the input's. A layer that loads must dequantize to its declared shape and
// multiply without crashing; anything else must be a lowbit::Error.
// Seeds: fuzz/corpus/qlinear_layouts/.
#include <cmath>

#include "fuzz_common.h"
#include "methods/quantizer.h"

using namespace lowbit;
using namespace lowbit_fuzz;

namespace {

struct Reader {
  const uint8_t* p;
  size_t n;
  uint8_t byte() { return n ? (--n, *p++) : 0; }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  quiet_logs();
  Reader r{data, size};
  const std::vector<const Quantizer*> methods = all_quantizers();
  const Quantizer& q = *methods[r.byte() % methods.size()];
  QuantConfig cfg = q.default_config();
  const std::vector<int> bits = q.supported_bits();
  const uint8_t mode = r.byte();
  if (!bits.empty()) cfg.bits = bits[mode % bits.size()];
  static const int kGroups[] = {-1, 32, 64, 16};
  if (mode & 0x10) cfg.group_size = kGroups[(mode >> 5) % 4];
  cfg.double_quant = mode & 0x08;
  cfg.sym = mode & 0x04;
  static const int64_t kDims[] = {32, 64, 128, 96};
  const int64_t n_out = kDims[r.byte() % 4], n_in = kDims[r.byte() % 4];
  if (!expect_ok_or_error([&] { q.validate(cfg); })) return 0;
  if (!q.fits(cfg, n_out, n_in, nullptr) || !q.layout_fits(cfg, n_out, n_in, nullptr) || q.needs_calibration()) return 0;

  // A valid module of this shape: W[o, i] = sin(o * 0.37 + i * 0.11).
  std::vector<float> W(size_t(n_out * n_in));
  for (int64_t o = 0; o < n_out; ++o)
    for (int64_t i = 0; i < n_in; ++i) W[size_t(o * n_in + i)] = std::sin(0.37f * float(o) + 0.11f * float(i));
  std::shared_ptr<QLinear> layer;
  if (!expect_ok_or_error([&] { layer = q.quantize_linear("fuzz", W.data(), n_out, n_in, cfg, nullptr); })) return 0;
  std::vector<HfModuleTensor> parts = q.hf_module_tensors(*layer, cfg);

  // Mutations, one control byte per tensor.
  static const DType kTypes[] = {DType::U8, DType::I8, DType::F16, DType::F32, DType::I32, DType::BF16, DType::I64};
  std::vector<TensorView> views(parts.size());
  std::map<std::string, const TensorView*> by_suffix;
  for (size_t k = 0; k < parts.size(); ++k) {
    HfModuleTensor& t = parts[k];
    const uint8_t c = r.byte();
    if (c % 11 == 1) continue;                                   // dropped
    if (c % 7 == 2) t.dtype = kTypes[(c / 7) % 7];               // re-typed
    if (c % 5 == 3 && !t.shape.empty()) t.shape.back() += (c & 0x20) ? 1 : -1;  // re-shaped
    if (c % 13 == 4) t.shape.push_back(1);                       // extra dimension
    int64_t numel = 1;
    for (int64_t& d : t.shape) {
      if (d < 0) d = 0;
      numel *= d;
    }
    t.bytes.resize(size_t(numel) * dtype_size(t.dtype));
    if (c & 0x80) {  // data from the input
      const size_t take = std::min(t.bytes.size(), r.n);
      if (take) std::memcpy(t.bytes.data(), r.p, take);
      r.p += take;
      r.n -= take;
    }
    views[k].name = t.suffix;
    views[k].dtype = t.dtype;
    views[k].shape = t.shape;
    views[k].data = t.bytes.data();
    views[k].nbytes = t.bytes.size();
    by_suffix[t.suffix] = &views[k];
  }
  std::shared_ptr<QLinear> back;
  if (!expect_ok_or_error([&] { back = q.load_hf_module(cfg, by_suffix, n_out, n_in, "fuzz"); })) return 0;
  FUZZ_CHECK(back && back->n_out() == n_out && back->n_in() == n_in, "loaded a layer of the wrong shape");
  std::vector<float> w(size_t(n_out * n_in));
  back->dequantize_rows(0, n_out, w.data());
  std::vector<float> x(size_t(n_in), 0.5f);
  std::vector<float> y(static_cast<size_t>(n_out));
  back->matmul(x.data(), 1, y.data(), 1);
  return 0;
}

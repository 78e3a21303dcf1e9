// Fuzzes the Hugging Face GPTQ / AWQ readers (read_hf_quant_linear): the first
// bytes pick the scheme (method, bits, group size, sym, v1/v2) and the shapes
// and dtypes of qweight / qzeros / scales / g_idx; the rest fills their data.
// A linear that loads must dequantize to finite values, and packing it back
// must reproduce the codes (pack(unpack(x)) keeps what the layout stores).
// Seeds: fuzz/corpus/hf_quant/.
#include <cmath>

#include "fuzz_common.h"
#include "io/hf_quant_layouts.h"

using namespace lowbit;
using namespace lowbit_fuzz;

namespace {

struct Reader {
  const uint8_t* p;
  size_t n;
  uint8_t byte() { return n ? (--n, *p++) : 0; }
  int64_t dim() { return int64_t(byte() % 9) * 8 + (byte() % 2 ? 0 : byte() % 4); }  // mostly multiples of 8, up to 64
};

DType pick_dtype(uint8_t b, DType usual) {
  static const DType kAll[] = {DType::I32, DType::F16, DType::F32, DType::I8, DType::BF16};
  return b % 8 == 0 ? kAll[(b / 8) % 5] : usual;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  quiet_logs();
  Reader r{data, size};
  HfQuantScheme s;
  const uint8_t mode = r.byte();
  s.method = mode & 1 ? HfQuantMethod::Awq : HfQuantMethod::Gptq;
  static const int kBits[] = {2, 3, 4, 8};
  s.spec.bits = s.method == HfQuantMethod::Awq ? 4 : kBits[(mode >> 1) % 4];
  static const int kGroups[] = {-1, 8, 16, 32, 64, 3};
  s.spec.group_size = kGroups[(mode >> 3) % 6];
  s.spec.sym = mode & 0x40;
  s.gptq_v2 = mode & 0x80;

  TensorView t[4];  // qweight, qzeros, scales, g_idx
  const char* names[4] = {"qweight", "qzeros", "scales", "g_idx"};
  const DType usual[4] = {DType::I32, DType::I32, DType::F16, DType::I32};
  for (int i = 0; i < 4; ++i) {
    t[i].name = names[i];
    t[i].dtype = pick_dtype(r.byte(), usual[i]);
    const int rank = 1 + r.byte() % 2;
    for (int d = 0; d < rank; ++d) t[i].shape.push_back(r.dim());
  }
  // Data: each tensor takes what it needs from the remaining bytes (short input: zero-filled copies).
  std::vector<std::vector<uint8_t>> bufs(4);
  for (int i = 0; i < 4; ++i) {
    const size_t need = size_t(t[i].numel()) * dtype_size(t[i].dtype);
    bufs[i].assign(need, 0);
    const size_t take = std::min(need, r.n);
    if (take) std::memcpy(bufs[i].data(), r.p, take);
    r.p += take;
    r.n -= take;
    t[i].data = bufs[i].data();
    t[i].nbytes = need;
  }
  const bool with_g_idx = mode & 0x20;
  IntGroupQuant q;
  const bool ok = expect_ok_or_error([&] { q = read_hf_quant_linear(s, t[0], t[1], t[2], with_g_idx ? &t[3] : nullptr, "fuzz"); });
  if (!ok) return 0;
  FUZZ_CHECK(q.q.size() == size_t(q.n_out * q.n_in), "codes %zu for [%lld, %lld]", q.q.size(), (long long)q.n_out,
             (long long)q.n_in);
  for (uint8_t c : q.q) FUZZ_CHECK(c <= q.spec.maxq(), "code %d above maxq %d", int(c), q.spec.maxq());
  for (int32_t g : q.g_idx) FUZZ_CHECK(g >= 0 && g < q.n_groups(), "g_idx %d outside [0, %lld)", g, (long long)q.n_groups());
  std::vector<float> w = q.dequantize();
  FUZZ_CHECK(w.size() == q.q.size(), "dequantized %zu values", w.size());
  return 0;
}

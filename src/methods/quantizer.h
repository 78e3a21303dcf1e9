// The Quantizer interface and its registry (name -> method), so a method plugs
// in without touching the CLI: `lowbit quantize --method NAME`, `--config
// quant.json`, `--list`, `lowbit compare` candidates and the Hugging Face
// loader all go through find_quantizer().
//
// A method turns each quantized linear of a model into a QLinear
// (model/qlinear.h) the runtime multiplies with directly, and knows its own
// Hugging Face layout: the tensors one module is stored as, and how to read
// them back. Which modules are quantized, where the folder goes, config.json,
// tokenizer files and the temp-then-rename are the generic writer's business
// (io/hf_quant_folder.h), not the method's.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "eval/calibration_data.h"
#include "lowbit/tensor.h"
#include "methods/quant_config.h"
#include "model/model.h"
#include "model/qlinear.h"

namespace lowbit {

struct QuantizeContext {
  const CalibrationSet* calib = nullptr;  // windows for methods that need them, else nullptr
  int threads = 0;                        // <= 0: all cores; results identical at any count
  bool hf_layout = false;                 // the result will be written: skip linears the HF layout cannot store
};

struct QuantizeReport {
  std::vector<std::string> quantized;  // canonical names of the linears now QLINEAR (or requantized in place)
  std::vector<std::string> skipped;    // "name: why" for block linears left as they were
  std::vector<std::string> notes;      // per-linear lines worth printing (e.g. LLM.int8 outlier share)
  double seconds = 0.0;
};

// One tensor of a module's HF layout: stored as "<hf module>.<suffix>".
struct HfModuleTensor {
  std::string suffix;           // "weight", "weight.absmax", "SCB", "W_q", "scale", ...
  DType dtype = DType::U8;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;   // numel(shape) * dtype_size(dtype)
};

class Quantizer {
 public:
  virtual ~Quantizer() = default;

  virtual std::string name() const = 0;     // registry key: "nf4", "llm.int8", "hqq", ...
  virtual std::string summary() const = 0;  // one line for `lowbit quantize --list`
  virtual bool needs_calibration() const { return false; }
  // Bits the method accepts (for --list and validation messages).
  virtual std::vector<int> supported_bits() const = 0;

  // The method's defaults (the config `--method NAME` alone means).
  virtual QuantConfig default_config() const {
    QuantConfig c;
    c.method = name();
    return c;
  }

  // Throws lowbit::Error naming the field (cfg.bits, cfg.group_size, ...) and a hint
  // when the method cannot do what cfg asks.
  virtual void validate(const QuantConfig& cfg) const = 0;
  // Bits per weight of one [n_out, n_in] linear under cfg: codes plus every scale,
  // zero, codebook and outlier column the layout stores, over n_out * n_in.
  virtual double bits_per_weight(const QuantConfig& cfg, int64_t n_out, int64_t n_in) const = 0;

  // Whether a [n_out, n_in] linear can take cfg (e.g. the group size divides n_in);
  // when not, *why says so and quantize_model leaves it as it was, named in the report.
  virtual bool fits(const QuantConfig& cfg, int64_t n_out, int64_t n_in, std::string* why) const { return true; }
  // Whether the method's Hugging Face layout can store such a linear (e.g. GPTQ
  // packs codes and zeros into 32-bit words); checked when ctx.hf_layout is set.
  virtual bool layout_fits(const QuantConfig& cfg, int64_t n_out, int64_t n_in, std::string* why) const { return true; }

  // Quantizes one linear W [n_out, n_in] (f32, row-major). importance: [n_in]
  // per-input-column weights (mean x², e.g. an imatrix entry) or nullptr.
  // Throws lowbit::Error naming `name` when the shape does not fit cfg.
  virtual std::shared_ptr<QLinear> quantize_linear(const std::string& name, const float* W, int64_t n_out, int64_t n_in,
                                                   const QuantConfig& cfg, const float* importance) const = 0;

  // Quantizes the model's linears in place (each becomes a QLINEAR view, see
  // Model::set_qlinear). The default runs quantize_linear over every decoder
  // block linear (quant/method_quantize.h is_block_linear) not matched by
  // cfg.skip_modules, one at a time, showing progress. Calibrated methods override it.
  virtual QuantizeReport quantize_model(Model& m, const QuantConfig& cfg, const QuantizeContext& ctx) const;

  // --- Hugging Face layout of one quantized module ---
  // The quantization_config written to config.json (default: quant_config_to_json(cfg)).
  virtual nlohmann::json hf_quantization_config(const QuantConfig& cfg) const { return quant_config_to_json(cfg); }
  // The tensors `q` (made by this quantizer) is stored as. Throws when `q` is not this method's.
  virtual std::vector<HfModuleTensor> hf_module_tensors(const QLinear& q, const QuantConfig& cfg) const = 0;
  // Suffixes whose presence marks a module as quantized by this layout ("weight.absmax",
  // "SCB", "W_q"), and every suffix a quantized module may carry (incl. "weight").
  virtual std::vector<std::string> hf_marker_suffixes() const = 0;
  virtual std::vector<std::string> hf_module_suffixes() const = 0;
  // Rebuilds the layer of a [n_out, n_in] module from its tensors (suffix -> view
  // into the mapped file). Throws lowbit::Error naming `where` (file and module)
  // and the tensor for missing parts, wrong shapes or dtypes, and bad values.
  virtual std::shared_ptr<QLinear> load_hf_module(const QuantConfig& cfg,
                                                  const std::map<std::string, const TensorView*>& parts,
                                                  int64_t n_out, int64_t n_in, const std::string& where) const = 0;
};

// The method registered under `name`; throws lowbit::Error listing every name.
const Quantizer& find_quantizer(const std::string& name);
// Every registered method, in registry order.
std::vector<const Quantizer*> all_quantizers();

// Whether cfg.skip_modules keeps linear `canonical` ("blk.0.ffn_down.weight") unquantized.
bool is_skipped_module(const QuantConfig& cfg, const std::string& canonical);

}  // namespace lowbit

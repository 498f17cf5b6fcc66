// TF.js layers model -> TorchScript module (tfjs_import.h).
#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "worker/inference/tfjs/tfjs_import.h"

namespace reelfarm::tfjs {
namespace {

using nlohmann::json;

struct Layer {
  std::string name, type;
  json config;
  std::vector<std::string> inputs;
  // Filled in topological order:
  int channels = 0;
  int factor = 1;           // output pixels per input pixel of the network, per side
  double reach = 0.0;       // receptive field so far, in network input pixels
  int block = 0;            // PixelShuffle<N>x: N
  at::Tensor kernel, bias;  // Conv2D: OIHW and [O] (bias undefined without use_bias)
};

const std::set<std::string>& SupportedTypes() {
  static const std::set<std::string> kTypes = {
      "InputLayer", "Conv2D",       "Activation",   "Concatenate",
      "Add",        "UpSampling2D", "MultiplyBeta", "PixelShuffle<N>x"};
  return kTypes;
}

const std::set<std::string>& SupportedActivations() {
  static const std::set<std::string> kActs = {"linear", "relu", "sigmoid", "tanh", "leaky_relu"};
  return kActs;
}

// "PixelShuffle4x" -> 4; 0 when the name is not of that form.
int PixelShuffleBlock(const std::string& type) {
  const std::string prefix = "PixelShuffle";
  if (type.size() < prefix.size() + 2 || type.compare(0, prefix.size(), prefix) != 0 ||
      type.back() != 'x') {
    return 0;
  }
  const std::string digits = type.substr(prefix.size(), type.size() - prefix.size() - 1);
  if (digits.empty() || digits.size() > 2 ||
      !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return 0;
  }
  return std::stoi(digits);
}

absl::Status Refuse(const Layer& l, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat("layer '", l.name, "' (", l.type, "): ", what));
}

std::string ShapeText(const std::vector<int64_t>& s) {
  return absl::StrCat("[", absl::StrJoin(s, ", "), "]");
}

class Builder {
 public:
  absl::Status Parse(const std::string& text);
  absl::Status Order();
  absl::Status InferShapes();
  absl::Status LoadWeights(const ShardReader& read_shard);
  absl::StatusOr<ImportedNetwork> Build();

 private:
  absl::Status Visit(size_t i, std::vector<int>& state, std::vector<size_t>& stack);
  absl::Status InferOne(Layer& l);
  std::string Var(const std::string& layer) const { return "t" + std::to_string(index_.at(layer)); }
  std::string Code(const Layer& l, size_t i) const;

  json manifest_;
  std::vector<Layer> layers_;
  std::map<std::string, size_t> index_;
  std::vector<size_t> order_;
  std::string input_, output_;
};

absl::Status Builder::Parse(const std::string& text) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("model.json is not JSON: ", e.what()));
  }
  try {
    if (j.contains("format") && j["format"] != "layers-model") {
      return absl::InvalidArgumentError(
          absl::StrCat("model.json has format '", j["format"].get<std::string>(),
                       "'; only TF.js layers models ('layers-model') are supported"));
    }
    const json& topo = j.at("modelTopology");
    const json& model = topo.contains("model_config") ? topo["model_config"] : topo;
    const std::string cls = model.value("class_name", "");
    if (cls != "Functional" && cls != "Model") {
      return absl::InvalidArgumentError(absl::StrCat(
          "model.json: the model is a '", cls, "'; only functional Keras models are supported"));
    }
    const json& cfg = model.at("config");
    for (const json& lj : cfg.at("layers")) {
      Layer l;
      l.type = lj.at("class_name").get<std::string>();
      l.name = lj.contains("name") ? lj["name"].get<std::string>()
                                   : lj.at("config").at("name").get<std::string>();
      l.config = lj.value("config", json::object());
      const json& inbound = lj.value("inbound_nodes", json::array());
      if (inbound.size() > 1) {
        return Refuse(l, absl::StrCat("is called ", inbound.size(),
                                      " times (a shared layer); each layer may be used once"));
      }
      if (inbound.size() == 1) {
        for (const json& in : inbound[0]) {
          if (in.at(1).get<int>() != 0 || in.at(2).get<int>() != 0) {
            return Refuse(l, "takes a tensor other than the first output of its input layer");
          }
          l.inputs.push_back(in.at(0).get<std::string>());
        }
      }
      if (index_.count(l.name)) return Refuse(l, "the name is used by two layers");
      const bool known = SupportedTypes().count(l.type) || PixelShuffleBlock(l.type) > 0;
      if (!known) {
        return Refuse(l, absl::StrCat("layer type '", l.type, "' is not supported; supported: ",
                                      absl::StrJoin(SupportedTypes(), ", ")));
      }
      index_[l.name] = layers_.size();
      layers_.push_back(std::move(l));
    }
    auto names = [&](const char* key) {
      std::vector<std::string> out;
      for (const json& e : cfg.at(key)) out.push_back(e.at(0).get<std::string>());
      return out;
    };
    const std::vector<std::string> ins = names("input_layers"), outs = names("output_layers");
    auto describe = [&](const std::vector<std::string>& v) {
      std::vector<std::string> parts;
      for (const auto& n : v) {
        parts.push_back(index_.count(n) ? absl::StrCat("'", n, "' (", layers_[index_[n]].type, ")")
                                        : absl::StrCat("'", n, "'"));
      }
      return absl::StrJoin(parts, ", ");
    };
    if (outs.size() != 1) {
      return absl::InvalidArgumentError(absl::StrCat("the model has ", outs.size(),
                                                     " outputs: layers ", describe(outs),
                                                     "; an upscaler has exactly one"));
    }
    if (ins.size() != 1) {
      return absl::InvalidArgumentError(absl::StrCat("the model has ", ins.size(),
                                                     " inputs: layers ", describe(ins),
                                                     "; an upscaler has exactly one"));
    }
    for (const auto& n : {ins[0], outs[0]}) {
      if (!index_.count(n)) {
        return absl::InvalidArgumentError(
            absl::StrCat("model.json names '", n, "' as input or output, but has no such layer"));
      }
    }
    input_ = ins[0];
    output_ = outs[0];
    manifest_ = j.value("weightsManifest", json::array());
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("model.json: malformed topology: ", e.what()));
  }
  for (const Layer& l : layers_) {
    for (const auto& in : l.inputs) {
      if (!index_.count(in))
        return Refuse(l, absl::StrCat("takes input from '", in, "', which is not a layer"));
    }
    if (l.type == "InputLayer" && l.name != input_) {
      return Refuse(l, absl::StrCat("is a second input; the model's input is '", input_, "'"));
    }
  }
  return absl::OkStatus();
}

// Depth-first post-order; state 1 = on the stack (a back edge is a cycle), 2 = done.
absl::Status Builder::Visit(size_t i, std::vector<int>& state, std::vector<size_t>& stack) {
  if (state[i] == 2) return absl::OkStatus();
  if (state[i] == 1) {
    std::vector<std::string> path;
    auto it = std::find(stack.begin(), stack.end(), i);
    for (; it != stack.end(); ++it) path.push_back(layers_[*it].name);
    path.push_back(layers_[i].name);
    std::reverse(path.begin(), path.end());  // data flows along the path
    return Refuse(layers_[i], absl::StrCat("is part of a cycle: ", absl::StrJoin(path, " -> "),
                                           "; a model must be a directed acyclic graph"));
  }
  state[i] = 1;
  stack.push_back(i);
  for (const auto& in : layers_[i].inputs) RETURN_IF_ERROR(Visit(index_.at(in), state, stack));
  stack.pop_back();
  state[i] = 2;
  order_.push_back(i);
  return absl::OkStatus();
}

absl::Status Builder::Order() {
  std::vector<int> state(layers_.size(), 0);
  std::vector<size_t> stack;
  for (size_t i = 0; i < layers_.size(); ++i) RETURN_IF_ERROR(Visit(i, state, stack));
  // Every layer must feed the output, and the output must come from the input.
  std::vector<bool> feeds(layers_.size(), false);
  feeds[index_.at(output_)] = true;
  for (auto it = order_.rbegin(); it != order_.rend(); ++it) {
    if (!feeds[*it]) continue;
    for (const auto& in : layers_[*it].inputs) feeds[index_.at(in)] = true;
  }
  for (size_t i = 0; i < layers_.size(); ++i) {
    if (!feeds[i]) {
      return Refuse(layers_[i],
                    absl::StrCat("does not lead to the output '", output_, "' (a second output?)"));
    }
  }
  return absl::OkStatus();
}

absl::Status Builder::InferOne(Layer& l) {
  const json& c = l.config;
  std::vector<const Layer*> in;
  for (const auto& n : l.inputs) in.push_back(&layers_[index_.at(n)]);
  auto one_input = [&]() -> absl::Status {
    if (in.size() != 1) return Refuse(l, absl::StrCat("has ", in.size(), " inputs; it takes one"));
    l.channels = in[0]->channels;
    l.factor = in[0]->factor;
    l.reach = in[0]->reach;
    return absl::OkStatus();
  };
  auto channels_last = [&]() -> absl::Status {
    if (c.contains("data_format") && !c["data_format"].is_null() &&
        c["data_format"] != "channels_last") {
      return Refuse(l, absl::StrCat("data_format '", c["data_format"].get<std::string>(),
                                    "' is not supported; TF.js models are channels_last"));
    }
    return absl::OkStatus();
  };
  auto activation = [&]() -> absl::Status {
    const std::string a = c.value("activation", "linear");
    if (!SupportedActivations().count(a)) {
      return Refuse(l, absl::StrCat("activation '", a, "' is not supported; supported: ",
                                    absl::StrJoin(SupportedActivations(), ", ")));
    }
    return absl::OkStatus();
  };
  if (l.type == "InputLayer") {
    if (!in.empty()) return Refuse(l, "an input layer has inputs");
    const json shape = c.value("batch_input_shape", json::array());
    if (shape.size() != 4 || !shape[3].is_number_integer()) {
      return Refuse(l, absl::StrCat("batch_input_shape ", shape.dump(),
                                    " is not [batch, height, width, channels]"));
    }
    const std::string dtype = c.value("dtype", "float32");
    if (dtype != "float32") return Refuse(l, absl::StrCat("dtype '", dtype, "' is not float32"));
    l.channels = shape[3].get<int>();
    return absl::OkStatus();
  }
  if (l.type == "Conv2D") {
    RETURN_IF_ERROR(one_input());
    RETURN_IF_ERROR(channels_last());
    RETURN_IF_ERROR(activation());
    const auto k = c.at("kernel_size").get<std::vector<int>>();
    const auto strides = c.value("strides", std::vector<int>{1, 1});
    const auto dil = c.value("dilation_rate", std::vector<int>{1, 1});
    const std::string padding = c.value("padding", "valid");
    if (k.size() != 2 || k[0] < 1 || k[1] < 1) return Refuse(l, "kernel_size is not [h, w]");
    if (strides != std::vector<int>{1, 1}) {
      return Refuse(l, absl::StrCat("strides [", absl::StrJoin(strides, ", "),
                                    "] are not supported; only [1, 1]"));
    }
    if (dil.size() != 2 || dil[0] < 1 || dil[1] < 1)
      return Refuse(l, "dilation_rate is not [h, w]");
    if (c.value("groups", 1) != 1) return Refuse(l, "grouped convolutions are not supported");
    if (padding != "same" && padding != "valid") {
      return Refuse(l, absl::StrCat("padding '", padding, "' is not supported; use same or valid"));
    }
    const int span = std::max(dil[0] * (k[0] - 1), dil[1] * (k[1] - 1));
    const int reach = padding == "same" ? (span + 1) / 2 : span;
    l.reach += static_cast<double>(reach) / l.factor;
    l.channels = c.at("filters").get<int>();
    return absl::OkStatus();
  }
  if (l.type == "Activation") {
    RETURN_IF_ERROR(one_input());
    return activation();
  }
  if (l.type == "MultiplyBeta") return one_input();
  if (l.type == "Concatenate" || l.type == "Add") {
    if (in.empty() || (l.type == "Add" && in.size() < 2)) {
      return Refuse(l, absl::StrCat("has ", in.size(), " inputs"));
    }
    if (l.type == "Concatenate") {
      const int axis = c.value("axis", -1);
      if (axis != -1 && axis != 3) {
        return Refuse(
            l, absl::StrCat("axis ", axis, " is not supported; only the channels (-1 or 3)"));
      }
    }
    l.factor = in[0]->factor;
    l.channels = 0;
    for (const Layer* p : in) {
      if (p->factor != l.factor) {
        return Refuse(l, absl::StrCat("its inputs '", in[0]->name, "' and '", p->name,
                                      "' have different sizes"));
      }
      if (l.type == "Add" && p->channels != in[0]->channels) {
        return Refuse(
            l, absl::StrCat("adds '", in[0]->name, "' (", in[0]->channels, " channels) and '",
                            p->name, "' (", p->channels, " channels)"));
      }
      l.channels = l.type == "Add" ? p->channels : l.channels + p->channels;
      l.reach = std::max(l.reach, p->reach);
    }
    return absl::OkStatus();
  }
  if (l.type == "UpSampling2D") {
    RETURN_IF_ERROR(one_input());
    RETURN_IF_ERROR(channels_last());
    const auto size = c.value("size", std::vector<int>{2, 2});
    const std::string interp = c.value("interpolation", "nearest");
    if (interp != "nearest") {
      return Refuse(l, absl::StrCat("interpolation '", interp, "' is not supported; only nearest"));
    }
    if (size.size() != 2 || size[0] != size[1] || size[0] < 1) {
      return Refuse(l, absl::StrCat("size [", absl::StrJoin(size, ", "),
                                    "] is not supported; only the same factor on both axes"));
    }
    l.block = size[0];
    l.factor *= size[0];
    return absl::OkStatus();
  }
  const int block = PixelShuffleBlock(l.type);
  if (block > 0) {
    RETURN_IF_ERROR(one_input());
    if (l.channels % (block * block) != 0) {
      return Refuse(
          l, absl::StrCat("takes ", l.channels, " channels, not a multiple of ", block * block));
    }
    l.block = block;
    l.channels /= block * block;
    l.factor *= block;
    return absl::OkStatus();
  }
  return Refuse(l, "layer type is not supported");
}

absl::Status Builder::InferShapes() {
  for (size_t i : order_) RETURN_IF_ERROR(InferOne(layers_[i]));
  return absl::OkStatus();
}

absl::Status Builder::LoadWeights(const ShardReader& read_shard) {
  std::set<std::string> seen;
  int group_no = 0;
  try {
    for (const json& group : manifest_) {
      ++group_no;
      std::string data;
      std::vector<std::string> paths;
      for (const json& p : group.at("paths")) {
        paths.push_back(p.get<std::string>());
        absl::StatusOr<std::string> shard = read_shard(paths.back());
        if (!shard.ok()) {
          return absl::Status(shard.status().code(), absl::StrCat("weight shard '", paths.back(),
                                                                  "': ", shard.status().message()));
        }
        data += *shard;
      }
      size_t offset = 0;
      for (const json& w : group.at("weights")) {
        const std::string wname = w.at("name").get<std::string>();
        const auto slash = wname.rfind('/');
        const std::string lname = slash == std::string::npos ? wname : wname.substr(0, slash);
        const std::string role = slash == std::string::npos ? "" : wname.substr(slash + 1);
        if (!index_.count(lname)) {
          return absl::InvalidArgumentError(
              absl::StrCat("weight '", wname, "' belongs to no layer of the model"));
        }
        Layer& l = layers_[index_.at(lname)];
        const std::string dtype = w.value("dtype", "float32");
        if (dtype != "float32") {
          return Refuse(l, absl::StrCat("weight '", wname, "' has dtype ", dtype,
                                        "; only float32 is supported"));
        }
        if (w.contains("quantization")) {
          return Refuse(
              l, absl::StrCat("weight '", wname, "' is quantized; only float32 is supported"));
        }
        const auto shape = w.at("shape").get<std::vector<int64_t>>();
        int64_t count = 1;
        for (int64_t d : shape) count *= d;
        const size_t bytes = static_cast<size_t>(count) * 4;
        if (offset + bytes > data.size()) {
          return Refuse(
              l, absl::StrCat("weight '", wname, "' needs bytes ", offset, "..", offset + bytes,
                              " of weight group ", group_no, ", but its shards (",
                              absl::StrJoin(paths, ", "), ") hold ", data.size(),
                              " bytes: a shard is shorter than the manifest says"));
        }
        if (l.type != "Conv2D" || (role != "kernel" && role != "bias")) {
          return Refuse(l, absl::StrCat("has weight '", wname, "', which a ", l.type,
                                        " layer does not take"));
        }
        if (!seen.insert(wname).second)
          return Refuse(l, absl::StrCat("weight '", wname, "' is listed twice"));
        const json& c = l.config;
        const auto k = c.at("kernel_size").get<std::vector<int64_t>>();
        const Layer& in = layers_[index_.at(l.inputs.at(0))];
        const std::vector<int64_t> want =
            role == "kernel" ? std::vector<int64_t>{k[0], k[1], in.channels, l.channels}
                             : std::vector<int64_t>{l.channels};
        if (shape != want) {
          return Refuse(l, absl::StrCat("weight '", wname, "' has shape ", ShapeText(shape),
                                        " but the layer needs ", ShapeText(want),
                                        " (kernel [h, w, in, out] for ", in.channels,
                                        " input channels and ", l.channels, " filters)"));
        }
        at::Tensor t = at::empty(shape, at::kFloat);
        std::memcpy(t.data_ptr<float>(), data.data() + offset, bytes);
        offset += bytes;
        if (role == "kernel") {
          l.kernel = t.permute({3, 2, 0, 1}).contiguous();  // HWIO -> OIHW
        } else {
          l.bias = t;
        }
      }
    }
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("model.json: malformed weightsManifest: ", e.what()));
  }
  for (size_t i : order_) {
    const Layer& l = layers_[i];
    if (l.type != "Conv2D") continue;
    if (!l.kernel.defined())
      return Refuse(l, absl::StrCat("weight '", l.name, "/kernel' is missing"));
    if (l.config.value("use_bias", true) && !l.bias.defined()) {
      return Refuse(l, absl::StrCat("weight '", l.name, "/bias' is missing"));
    }
  }
  return absl::OkStatus();
}

std::string ActivationCode(const std::string& act, const std::string& v) {
  if (act == "relu") return "torch.relu(" + v + ")";
  if (act == "sigmoid") return "torch.sigmoid(" + v + ")";
  if (act == "tanh") return "torch.tanh(" + v + ")";
  if (act == "leaky_relu") return "torch.leaky_relu(" + v + ", 0.2)";  // Keras' default alpha
  return v;
}

std::string Builder::Code(const Layer& l, size_t i) const {
  const std::string out = "t" + std::to_string(i);
  std::vector<std::string> in;
  for (const auto& n : l.inputs) in.push_back(Var(n));
  std::ostringstream s;
  if (l.type == "InputLayer") {
    s << "    " << out << " = x\n";
  } else if (l.type == "Conv2D") {
    const json& c = l.config;
    const auto k = c.at("kernel_size").get<std::vector<int>>();
    const auto d = c.value("dilation_rate", std::vector<int>{1, 1});
    std::string x = in[0];
    int ph = 0, pw = 0;
    if (c.value("padding", "valid") == "same") {
      const int th = d[0] * (k[0] - 1), tw = d[1] * (k[1] - 1);
      if (th % 2 == 0 && tw % 2 == 0) {
        ph = th / 2;
        pw = tw / 2;
      } else {
        // TF pads the extra pixel after (bottom, right).
        s << "    " << out << "p = torch.constant_pad_nd(" << x << ", [" << tw / 2 << ", "
          << tw - tw / 2 << ", " << th / 2 << ", " << th - th / 2 << "], 0.0)\n";
        x = out + "p";
      }
    }
    const std::string bias = l.bias.defined() ? "self.b" + std::to_string(i) : "None";
    const std::string conv =
        absl::StrCat("torch.conv2d(", x, ", self.w", i, ", ", bias, ", [1, 1], [", ph, ", ", pw,
                     "], [", d[0], ", ", d[1], "], 1)");
    s << "    " << out << " = " << ActivationCode(c.value("activation", "linear"), conv) << "\n";
  } else if (l.type == "Activation") {
    s << "    " << out << " = " << ActivationCode(l.config.value("activation", "linear"), in[0])
      << "\n";
  } else if (l.type == "MultiplyBeta") {
    s << "    " << out << " = " << in[0] << " * 0.2\n";  // UpscalerJS's BETA
  } else if (l.type == "Concatenate") {
    s << "    " << out << " = torch.cat([" << absl::StrJoin(in, ", ") << "], 1)\n";
  } else if (l.type == "Add") {
    s << "    " << out << " = " << absl::StrJoin(in, " + ") << "\n";
  } else if (l.type == "UpSampling2D") {
    s << "    " << out << " = torch.repeat_interleave(torch.repeat_interleave(" << in[0] << ", "
      << l.block << ", 2), " << l.block << ", 3)\n";
  } else {  // PixelShuffle<N>x: depth_to_space in NHWC order (DepthToSpaceNchw)
    const int b = l.block;
    s << "    " << out << "s = " << in[0] << ".size()\n";
    s << "    " << out << " = " << in[0] << ".reshape([" << out << "s[0], " << b << ", " << b
      << ", " << l.channels << ", " << out << "s[2], " << out
      << "s[3]]).permute([0, 3, 4, 1, 5, 2])"
      << ".reshape([" << out << "s[0], " << l.channels << ", " << out << "s[2] * " << b << ", "
      << out << "s[3] * " << b << "])\n";
  }
  return s.str();
}

absl::StatusOr<ImportedNetwork> Builder::Build() {
  ImportedNetwork net;
  const Layer& out = layers_[index_.at(output_)];
  if (out.channels != 3) {
    return Refuse(
        out, absl::StrCat("the output has ", out.channels, " channels; an RGB upscaler gives 3"));
  }
  net.scale = out.factor;
  net.input_channels = layers_[index_.at(input_)].channels;
  net.receptive_field = static_cast<int>(std::ceil(out.reach - 1e-9));
  net.layers = static_cast<int>(layers_.size());
  std::string code = "def forward(self, x):\n";
  // Liveness: a tensor lives from its layer until its last consumer.
  std::map<size_t, size_t> last_use;
  for (size_t pos = 0; pos < order_.size(); ++pos) {
    for (const auto& n : layers_[order_[pos]].inputs) last_use[index_.at(n)] = pos;
  }
  int64_t live = 0, peak = 0;
  for (size_t pos = 0; pos < order_.size(); ++pos) {
    const size_t i = order_[pos];
    const Layer& l = layers_[i];
    code += Code(l, i);
    if (l.kernel.defined()) {
      net.module.register_parameter("w" + std::to_string(i), l.kernel, false);
      net.parameter_bytes += l.kernel.numel() * 4;
    }
    if (l.bias.defined()) {
      net.module.register_parameter("b" + std::to_string(i), l.bias, false);
      net.parameter_bytes += l.bias.numel() * 4;
    }
    live += int64_t{l.channels} * l.factor * l.factor;
    peak = std::max(peak, live);
    for (const auto& n : l.inputs) {
      const size_t j = index_.at(n);
      if (last_use[j] == pos) {
        const Layer& p = layers_[j];
        live -= int64_t{p.channels} * p.factor * p.factor;
        last_use[j] = SIZE_MAX;  // counted once when a layer takes it twice
      }
    }
  }
  net.activation_bytes_per_pixel = peak * 4;
  code += "    return t" + std::to_string(index_.at(output_)) + "\n";
  try {
    net.module.define(code);
    net.module.eval();
    // A trial run: the network must map [1, C, h, w] to [1, 3, h*scale, w*scale].
    c10::InferenceMode guard;
    const int64_t h = 12, w = 16;
    at::Tensor y = net.module.forward({at::zeros({1, net.input_channels, h, w})}).toTensor();
    if (y.dim() != 4 || y.size(1) != 3 || y.size(2) != h * net.scale ||
        y.size(3) != w * net.scale) {
      return Refuse(out,
                    absl::StrCat("a [1, ", net.input_channels, ", ", h, ", ", w, "] input gives [",
                                 absl::StrJoin(y.sizes(), ", "), "], not the input scaled by ",
                                 net.scale, " (valid padding shrinks the frame?)"));
    }
  } catch (const c10::Error& e) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the TorchScript built from the model does not run: ", e.what_without_backtrace()));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("the TorchScript built from the model does not compile: ", e.what()));
  }
  return net;
}

}  // namespace

at::Tensor DepthToSpaceNchw(const at::Tensor& x, int64_t block) {
  const int64_t n = x.size(0), c = x.size(1) / (block * block), h = x.size(2), w = x.size(3);
  return x.reshape({n, block, block, c, h, w})
      .permute({0, 3, 4, 1, 5, 2})
      .reshape({n, c, h * block, w * block});
}

absl::StatusOr<ImportedNetwork> BuildNetwork(const std::string& model_json,
                                             const ShardReader& read_shard) {
  Builder b;
  RETURN_IF_ERROR(b.Parse(model_json));
  RETURN_IF_ERROR(b.Order());
  RETURN_IF_ERROR(b.InferShapes());
  RETURN_IF_ERROR(b.LoadWeights(read_shard));
  return b.Build();
}

}  // namespace reelfarm::tfjs

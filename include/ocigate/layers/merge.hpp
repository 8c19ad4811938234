#pragma once
// Merging layer reports the way a container runtime stacks the layers: later layers override
// earlier ones, `.wh.<name>` deletes, `.wh..wh..opq` makes a directory opaque. The result is
// what the policy checks read (policy::ImageFacts::filesystem).

#include <vector>

#include "ocigate/layers/report.hpp"
#include "ocigate/policy/filesystem.hpp"

namespace ocigate::layers {

// `reports` in manifest order (base layer first). Setuid files, installers, /etc/passwd,
// os-release and package databases are judged on the final filesystem; secret files are taken
// from every layer. Layers that were not (fully) inspected are listed in not_inspected.
policy::FilesystemFacts merge(const std::vector<LayerReport>& reports);

}  // namespace ocigate::layers

#pragma once
// Reading an OSV record straight from its text with nlohmann's SAX interface, without building a
// JSON document first: loading osv.dev's zips spent most of its time allocating documents whose
// long fields (details, references) the index never reads. It gives the same record, and the same
// problem, as record_from_json on the document: a repeated key's last value wins, null is absent.

#include <string_view>

#include "ocigate/vuln/osv.hpp"

namespace ocigate::vuln::osv {

enum class ReadProblem {
  none,
  invalid_json,
  not_object,          // the text is JSON, but not an object
  no_id,               // id missing, empty, null or not a string
  wrong_type,          // aliases, upstream, related, modified or severity of the wrong type
  affected_not_array,
  malformed_affected,  // an affected entry (its package, ranges, events, versions, severity)
};

// Fills `out` when the answer is ReadProblem::none; `out.id` is set whenever the record had one.
ReadProblem read_record(std::string_view text, Record& out);

}  // namespace ocigate::vuln::osv

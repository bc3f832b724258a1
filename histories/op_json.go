package histories

// MarshalJSON encodes op as one history line (see [AppendOp]), so that
// results and reports that quote ops through encoding/json show them
// exactly as history.jsonl has them.
func (o Op) MarshalJSON() ([]byte, error) {
	return AppendOp(nil, &o)
}

// UnmarshalJSON decodes one history line into o, with the same rules and
// errors as a [Reader] (except the index order, which needs neighbours).
func (o *Op) UnmarshalJSON(b []byte) error {
	var d decoder
	return d.decodeOp(b, o)
}

// String returns op as its history line, or a note saying why it cannot be
// encoded.
func (o Op) String() string {
	b, err := AppendOp(nil, &o)
	if err != nil {
		return "<invalid op: " + err.Error() + ">"
	}
	return string(b)
}

// MarshalJSON encodes v as it appears in a history line. (Decoding a value
// needs its op's f, so there is no UnmarshalJSON: decode the whole [Op].)
func (v Value) MarshalJSON() ([]byte, error) {
	return appendValue(nil, &v, &jsonNotation)
}

package devtemporal

import enumspb "go.temporal.io/api/enums/v1"

// Names of the custom search attributes txflow workflows set.
const (
	SearchAttrFile     = "TxflowFile"     // name of the ingested CSV file (Keyword)
	SearchAttrStatus   = "TxflowStatus"   // processing status (Keyword)
	SearchAttrRows     = "TxflowRows"     // rows read from the file (Int)
	SearchAttrRejected = "TxflowRejected" // rows rejected by validation (Int)
	SearchAttrErrors   = "TxflowErrors"   // errors reported (Int)
)

// TxflowSearchAttributes lists the custom search attributes txflow needs on its
// namespace, with their types. The devserver command registers them at start.
// Treat it as read-only; use maps.Clone to get a map to modify.
var TxflowSearchAttributes = map[string]enumspb.IndexedValueType{
	SearchAttrFile:     enumspb.INDEXED_VALUE_TYPE_KEYWORD,
	SearchAttrStatus:   enumspb.INDEXED_VALUE_TYPE_KEYWORD,
	SearchAttrRows:     enumspb.INDEXED_VALUE_TYPE_INT,
	SearchAttrRejected: enumspb.INDEXED_VALUE_TYPE_INT,
	SearchAttrErrors:   enumspb.INDEXED_VALUE_TYPE_INT,
}

"""Parquet held in memory (an object downloaded from Blob, a report read back) as an Arrow table.

The bytes are copied into an Arrow-owned buffer first. A worker thread of pyarrow's pool can drop the
last reference to the reader's buffer just after `read_table` returned; when that buffer is a Python
`bytes`, releasing it needs the GIL, and if the interpreter is exiting by then the thread is cancelled
inside a C++ destructor and the process aborts ("terminate called without an active exception", exit
134: apache/arrow#34314). `chargeback report` printed its answer and then failed one run in three.
"""

import pyarrow as pa
import pyarrow.parquet as pq


def read_parquet_bytes(data: bytes, schema: pa.Schema | None = None) -> pa.Table:
    owned = pa.BufferOutputStream()
    owned.write(data)
    return pq.read_table(pa.BufferReader(owned.getvalue()), schema=schema)

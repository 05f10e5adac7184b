/* eval_json.h - dotted-path lookups in eval.json (cJSON), shared by the
 * report and the TensorBoard writer: "probe.test_auc" walks the nested
 * objects. A missing key or a wrong type gives NULL / NaN / "". */
#ifndef DX_EVAL_JSON_H
#define DX_EVAL_JSON_H

#include <cjson/cJSON.h>

const cJSON *dx_json_at(const cJSON *o, const char *dotted);
/* the number at dotted, NaN otherwise */
double dx_json_num(const cJSON *o, const char *dotted);
/* element index of the array at dotted, if a number; NaN otherwise */
double dx_json_num_item(const cJSON *o, const char *dotted, int index);
/* the string at dotted, "" otherwise */
const char *dx_json_str(const cJSON *o, const char *dotted);

#endif /* DX_EVAL_JSON_H */

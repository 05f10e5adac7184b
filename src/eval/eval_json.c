/* eval_json.c - see eval_json.h. */
#include "eval/eval_json.h"

#include <math.h>
#include <string.h>

const cJSON *dx_json_at(const cJSON *o, const char *dotted) {
    char key[128];
    const char *p = dotted;
    while (o && *p) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        if (n >= sizeof key) return NULL;
        memcpy(key, p, n);
        key[n] = 0;
        o = cJSON_GetObjectItemCaseSensitive(o, key);
        p = dot ? dot + 1 : p + n;
    }
    return o;
}

double dx_json_num(const cJSON *o, const char *dotted) {
    const cJSON *v = dx_json_at(o, dotted);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

double dx_json_num_item(const cJSON *o, const char *dotted, int index) {
    const cJSON *a = dx_json_at(o, dotted);
    const cJSON *v = cJSON_IsArray(a) ? cJSON_GetArrayItem(a, index) : NULL;
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

const char *dx_json_str(const cJSON *o, const char *dotted) {
    const cJSON *v = dx_json_at(o, dotted);
    return cJSON_IsString(v) ? v->valuestring : "";
}

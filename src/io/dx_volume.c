/* dx_volume.c - see dx_volume.h. */
#include "io/dx_volume.h"

#include <stdlib.h>
#include <string.h>

void dx_volume_free(dx_volume *v) {
    if (!v) return;
    free(v->hu);
    free(v->sop_uids);
    free(v->slice_z);
    memset(v, 0, sizeof *v);
}

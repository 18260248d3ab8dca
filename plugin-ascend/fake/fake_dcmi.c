/* A fake libdcmi.so for the Ascend plugin's DCMI backend, written from the documented
 * signatures of Huawei's DCMI API (dcmi_interface_api.h): the calls the plugin makes, with the
 * documented structures, return codes and units (MB).
 *
 * The NPUs are configured by environment variables, read at dcmi_init():
 *   FAKE_DCMI_CARDS            cards (default 2), card IDs 0..n-1
 *   FAKE_DCMI_DEVICES_PER_CARD NPUs per card (default 1)
 *   FAKE_DCMI_CHIP             chip name, e.g. 910B3 (default), 310P3
 *   FAKE_DCMI_HBM_MB           HBM size per NPU in MB (default 65536); 0: no HBM (as a 310P),
 *                              the memory then comes from dcmi_get_device_memory_info_v3
 *   FAKE_DCMI_DDR_MB           that memory (default 21527)
 *   FAKE_DCMI_INIT_FAIL        1: dcmi_init fails (no driver)
 *   FAKE_DCMI_DIE_FAIL         logic ID whose die ID query fails (default none)
 *   FAKE_DCMI_HEALTH_FILE      a file holding the logic ID of an unhealthy NPU (-1: none),
 *                              read at every health query
 * Logic ID = card x per-card + device; physical ID = NPUs - 1 - logic ID (they differ on real
 * machines too); VDIE die ID = {0x1000 + logic, 0x2000, 0x3000, 0x4000, 0x5000 + card}.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))
#define MAX_CHIP_NAME_LEN 32
#define DIE_ID_COUNT 5

#define DCMI_OK 0
#define DCMI_ERROR_CODE_BASE (-8000)
#define DCMI_ERR_CODE_INVALID_PARAMETER (DCMI_ERROR_CODE_BASE - 1)
#define DCMI_ERR_CODE_INNER_ERR (DCMI_ERROR_CODE_BASE - 5)
#define DCMI_ERR_CODE_INVALID_DEVICE_ID (DCMI_ERROR_CODE_BASE - 7)
#define DCMI_ERR_CODE_NOT_REDAY (DCMI_ERROR_CODE_BASE - 12)
#define DCMI_ERR_CODE_NOT_SUPPORT (DCMI_ERROR_CODE_BASE - 255)

struct dcmi_chip_info {
    unsigned char chip_type[MAX_CHIP_NAME_LEN];
    unsigned char chip_name[MAX_CHIP_NAME_LEN];
    unsigned char chip_ver[MAX_CHIP_NAME_LEN];
    unsigned int aicore_cnt;
};

struct dcmi_die_id {
    unsigned int soc_die[DIE_ID_COUNT];
};

struct dcmi_hbm_info {
    unsigned long long memory_size; /* MB */
    unsigned int freq;
    unsigned long long memory_usage;
    int temp;
    unsigned int bandwith_util_rate;
};

struct dcmi_get_memory_info_stru {
    unsigned long long memory_size; /* MB */
    unsigned long long memory_available;
    unsigned int freq;
    unsigned long hugepagesize;
    unsigned long hugepages_total;
    unsigned long hugepages_free;
    unsigned int utiliza;
    unsigned char reserve[60];
};

enum dcmi_die_type { NDIE, VDIE };

static int inited, cards = 2, per_card = 1, die_fail = -1;
static unsigned long long hbm_mb = 65536, ddr_mb = 21527;
static char chip[MAX_CHIP_NAME_LEN] = "910B3";

static int env_int(const char *name, int dflt) {
    const char *v = getenv(name);
    return v && *v ? atoi(v) : dflt;
}

static int total(void) { return cards * per_card; }

static int logic_of(int card, int device) {
    if (card < 0 || card >= cards || device < 0 || device >= per_card) return -1;
    return card * per_card + device;
}

EXPORT int dcmi_init(void) {
    if (env_int("FAKE_DCMI_INIT_FAIL", 0)) return DCMI_ERR_CODE_INNER_ERR;
    cards = env_int("FAKE_DCMI_CARDS", 2);
    per_card = env_int("FAKE_DCMI_DEVICES_PER_CARD", 1);
    die_fail = env_int("FAKE_DCMI_DIE_FAIL", -1);
    hbm_mb = (unsigned long long)env_int("FAKE_DCMI_HBM_MB", 65536);
    ddr_mb = (unsigned long long)env_int("FAKE_DCMI_DDR_MB", 21527);
    const char *c = getenv("FAKE_DCMI_CHIP");
    if (c && *c) snprintf(chip, sizeof chip, "%s", c);
    inited = 1;
    return DCMI_OK;
}

EXPORT int dcmi_get_card_list(int *card_num, int *card_list, int list_len) {
    if (!inited) return DCMI_ERR_CODE_NOT_REDAY;
    if (!card_num || !card_list || list_len < cards) return DCMI_ERR_CODE_INVALID_PARAMETER;
    for (int i = 0; i < cards; i++) card_list[i] = i;
    *card_num = cards;
    return DCMI_OK;
}

EXPORT int dcmi_get_device_num_in_card(int card_id, int *device_num) {
    if (!inited) return DCMI_ERR_CODE_NOT_REDAY;
    if (!device_num || card_id < 0 || card_id >= cards) return DCMI_ERR_CODE_INVALID_DEVICE_ID;
    *device_num = per_card;
    return DCMI_OK;
}

EXPORT int dcmi_get_device_logic_id(int *device_logic_id, int card_id, int device_id) {
    if (!inited) return DCMI_ERR_CODE_NOT_REDAY;
    int logic = logic_of(card_id, device_id);
    if (!device_logic_id || logic < 0) return DCMI_ERR_CODE_INVALID_DEVICE_ID;
    *device_logic_id = logic;
    return DCMI_OK;
}

EXPORT int dcmi_get_device_phyid_from_logicid(unsigned int logicid, unsigned int *phyid) {
    if (!inited) return DCMI_ERR_CODE_NOT_REDAY;
    if (!phyid || logicid >= (unsigned)total()) return DCMI_ERR_CODE_INVALID_DEVICE_ID;
    *phyid = (unsigned)total() - 1 - logicid;
    return DCMI_OK;
}

EXPORT int dcmi_get_device_chip_info(int card_id, int device_id, struct dcmi_chip_info *info) {
    if (!inited) return DCMI_ERR_CODE_NOT_REDAY;
    if (!info || logic_of(card_id, device_id) < 0) return DCMI_ERR_CODE_INVALID_DEVICE_ID;
    memset(info, 0, sizeof *info);
    snprintf((char *)info->chip_type, MAX_CHIP_NAME_LEN, "Ascend");
    snprintf((char *)info->chip_name, MAX_CHIP_NAME_LEN, "%s", chip);
    snprintf((char *)info->chip_ver, MAX_CHIP_NAME_LEN, "V1");
    info->aicore_cnt = 20;
    return DCMI_OK;
}

EXPORT int dcmi_get_device_die_v2(int card_id, int device_id, enum dcmi_die_type input_type,
                                  struct dcmi_die_id *die_id) {
    if (!inited) return DCMI_ERR_CODE_NOT_REDAY;
    int logic = logic_of(card_id, device_id);
    if (!die_id || logic < 0 || input_type != VDIE) return DCMI_ERR_CODE_INVALID_PARAMETER;
    if (logic == die_fail) return DCMI_ERR_CODE_INNER_ERR;
    unsigned int words[DIE_ID_COUNT] = {0x1000u + (unsigned)logic, 0x2000u, 0x3000u, 0x4000u,
                                        0x5000u + (unsigned)card_id};
    memcpy(die_id->soc_die, words, sizeof words);
    return DCMI_OK;
}

EXPORT int dcmi_get_device_hbm_info(int card_id, int device_id, struct dcmi_hbm_info *hbm) {
    if (!inited) return DCMI_ERR_CODE_NOT_REDAY;
    if (!hbm || logic_of(card_id, device_id) < 0) return DCMI_ERR_CODE_INVALID_DEVICE_ID;
    if (!hbm_mb) return DCMI_ERR_CODE_NOT_SUPPORT;
    memset(hbm, 0, sizeof *hbm);
    hbm->memory_size = hbm_mb;
    hbm->freq = 1600;
    return DCMI_OK;
}

EXPORT int dcmi_get_device_memory_info_v3(int card_id, int device_id,
                                          struct dcmi_get_memory_info_stru *mem) {
    if (!inited) return DCMI_ERR_CODE_NOT_REDAY;
    if (!mem || logic_of(card_id, device_id) < 0) return DCMI_ERR_CODE_INVALID_DEVICE_ID;
    memset(mem, 0, sizeof *mem);
    mem->memory_size = ddr_mb;
    mem->memory_available = ddr_mb;
    return DCMI_OK;
}

EXPORT int dcmi_get_device_health(int card_id, int device_id, unsigned int *health) {
    if (!inited) return DCMI_ERR_CODE_NOT_REDAY;
    int logic = logic_of(card_id, device_id);
    if (!health || logic < 0) return DCMI_ERR_CODE_INVALID_DEVICE_ID;
    int bad = -1;
    const char *path = getenv("FAKE_DCMI_HEALTH_FILE");
    if (path && *path) {
        FILE *f = fopen(path, "r");
        if (f) {
            if (fscanf(f, "%d", &bad) != 1) bad = -1;
            fclose(f);
        }
    }
    *health = logic == bad ? 3u : 0u; /* 0: healthy; 1 minor, 2 major, 3 critical alarm */
    return DCMI_OK;
}

/*
 * bridge_hdr.c - qspool headers as NATS headers and back.
 */
#include "config.h"

#include "bridge.h"

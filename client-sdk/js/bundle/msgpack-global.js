// SPDX-License-Identifier: Apache-2.0
// Entry of rankcast-msgpack.min.js: the MessagePack codec for the script-tag build, as the
// global RankcastMsgpack that bundle/msgpack-script.js looks for.

import { decode, encode } from '@msgpack/msgpack';

globalThis.RankcastMsgpack = { encode, decode };

#!/usr/bin/env node

exports.handler = (event, context, callback) => {
  const result = {};
  if (Buffer.isBuffer(event)) {
    result['msg'] = event.toString();
    result['type'] = 'non-dict';
  } else {
    result['msg'] = event;
    result['type'] = 'dict';
  }
  result['say'] = 'hello world';
  callback(null, result);
};
